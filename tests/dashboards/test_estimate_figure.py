"""The report draws a promoted study's selection estimate: selected, re-seeded and held-out values side by side."""

from __future__ import annotations

from test_figures import make_single_study

from sweeplab.core.keys import STUDY_ATTR_ESTIMATE
from sweeplab.core.records import SelectionEstimate
from sweeplab.dashboards import study_report_html, study_sections
from sweeplab.dashboards.figures import FIGURE_IDS, TITLE_ESTIMATE, TITLE_HISTORY


def test_the_estimate_section_appears_after_a_promote_only():
    study = make_single_study(name="estimated", n_trials=6)
    assert TITLE_ESTIMATE not in [s.title for s in study_sections(study)]

    estimate = SelectionEstimate.build(metric="val_accuracy", direction="maximize", trial=3, selected_value=1.0,
                                       reseeded_mean=0.97, cv_mean=None, heldout_value=0.917, heldout_rows=36,
                                       refit=True, model_uri="models:/wine@champion")
    study.set_user_attr(STUDY_ATTR_ESTIMATE, estimate.to_json())
    sections = study_sections(study)
    assert [s.title for s in sections][:2] == [TITLE_HISTORY, TITLE_ESTIMATE]
    section = sections[1]
    bar = section.figure.data[0]
    assert list(bar.y) == [1.0, 0.97, 0.917]
    assert "re-seeded mean" in bar.x[1] and "held-out, 36 rows" in bar.x[2]
    assert "Optimism gap 0.083" in section.note and "0.053" in section.note and "refit" in section.note
    page = study_report_html("estimated", study)
    assert f"id='{FIGURE_IDS[TITLE_ESTIMATE]}'" in page or f'id="{FIGURE_IDS[TITLE_ESTIMATE]}"' in page


def test_the_gap_is_signed_for_the_direction():
    e = SelectionEstimate.build(metric="val_loss", direction="minimize", trial=0, selected_value=0.2,
                                reseeded_mean=0.25, cv_mean=0.3, heldout_value=0.35, heldout_rows=10, refit=False)
    assert e.heldout_metric == "test_loss"
    assert abs(e.optimism_gap - 0.15) < 1e-12  # a loss lower on validation than on held-out rows: optimistic
    assert abs(e.estimate_gap - 0.05) < 1e-12  # the cross-validated mean is preferred to the re-seeded one
    assert SelectionEstimate.from_json(e.to_json()) == e
