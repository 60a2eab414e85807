"""The examples run, download nothing, and show what they claim."""

import importlib.util
import os
from pathlib import Path

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_reproduces_captum_readme():
    load("quickstart").main()  # asserts the published numbers and |delta| < 1e-4


def test_digits_demo(tmp_path, monkeypatch):
    demo = load("digits")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main(n_show=3)
    assert result["accuracy"] > 0.9
    assert result["max_abs_delta"] < 0.1
    assert (tmp_path / "digits_attributions.png").stat().st_size > 1000


@pytest.mark.compile
def test_attribution_prior_removes_the_shortcut():
    result = load("attribution_prior").main()
    assert result["with attribution prior"] > result["plain"] + 0.05
    assert result["with attribution prior decoy share"] < 0.02 < result["plain decoy share"]


def test_text_attribution(tmp_path, monkeypatch):
    demo = load("text_attribution")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main(n_show=6)
    assert result["accuracy"] > 0.9
    assert result["mean_score_agreeing_words"] > 2 * result["mean_score_neutral_words"]
    page = (tmp_path / "text_attribution.html").read_text()
    assert page.count('<mark class="pa-tok"') == 6 * 12 and "Colour key" in page
    assert (tmp_path / "text_attribution.png").stat().st_size > 1000


def test_tabular_comparison(tmp_path, monkeypatch):
    demo = load("tabular")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    assert result["accuracy"] > 0.9
    # the five methods rank features alike on this near-additive model
    for name in ("feature ablation", "KernelSHAP", "LIME", "integrated gradients"):
        assert result[name] > 0.8, name
    assert (tmp_path / "tabular_attributions.png").stat().st_size > 1000


def test_evaluate_demo(tmp_path, monkeypatch):
    demo = load("evaluate")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    table = demo.main(n_images=24, steps=8)
    assert set(table) == {"saliency", "integrated gradients", "smoothgrad(IG)", "deep_lift", "occlusion"}
    # path methods remove the evidence faster than saliency, and saliency depends on the weights
    assert table["integrated gradients"]["deletion AUC"] < table["saliency"]["deletion AUC"]
    assert table["integrated gradients"]["insertion AUC"] > table["saliency"]["insertion AUC"]
    assert table["saliency"]["rank corr, top layer random"] < 0.5
    assert all(row["infidelity"] >= 0 and row["sensitivity"] >= 0 for row in table.values())
    assert (tmp_path / "evaluate_curves.png").stat().st_size > 1000
    ranked = demo.quantus_table(n_images=16, n_samples=3)
    assert len(ranked.methods) == 6 and len(ranked.metrics) == 6
    assert (tmp_path / "evaluate_table.png").stat().st_size > 1000
    # gradients of a ReLU net explain the target: another class's explanation differs
    assert ranked.scores["saliency"]["random logit"] < 0.95


def test_concepts_demo(tmp_path, monkeypatch):
    demo = load("concepts")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    tcav = result["tcav"]
    assert set(tcav) == {"closed loops @ conv2", "closed loops @ fc1", "open strokes @ conv2", "open strokes @ fc1"}
    # loops make an 8 at the dense layer (significant), open strokes do not
    assert tcav["closed loops @ fc1"]["p_value"] < 0.05 < tcav["open strokes @ fc1"]["p_value"]
    assert tcav["closed loops @ fc1"]["tcav"] > tcav["closed loops @ fc1"]["random"]
    gates = result["gates"]
    assert gates["open gates"] < 15 and gates["accuracy with gates"] > 0.9
    assert gates["mean closest |correlation|"] > 0.5
    assert (tmp_path / "concepts_tcav.png").stat().st_size > 1000


def test_dataset_demo(tmp_path, monkeypatch):
    demo = load("dataset")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    assert result["stored"] == 360 and sum(result["counts"].values()) == 360
    assert all(m.shape == (8, 8) for m in result["means"].values())
    assert (tmp_path / "dataset_class_means.png").stat().st_size > 1000


def test_insights_demo(tmp_path):
    result = load("insights").main(n_examples=20, out=str(tmp_path))
    page = (tmp_path / "insights_report.html").read_text()
    assert result["accuracy"] > 0.9 and page.count("data:image/png;base64") == 20 * 5
    assert all(name in page for name in ("saliency", "integrated gradients", "smoothgrad(IG)", "occlusion"))


def test_influence_demo(tmp_path, monkeypatch):
    demo = load("influence")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    assert result["precision_at_k"] > 0.6  # chance is 0.05
    assert result["recall_at_3k"] > 0.9 and result["accuracy"] > 0.9
    assert result["precision_at_k EK-FAC"] > 0.6 and result["precision_at_k TRAK"] > 0.6
    assert result["LDS EK-FAC"] > 0.2 and result["LDS TracInCP"] > 0.05  # EK-FAC 0.37, TracIn 0.17 on this CPU
    assert (tmp_path / "influence_proponents.png").stat().st_size > 1000


def test_llm_attribution_example(tmp_path, monkeypatch):
    demo = load("llm_attribution")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    assert result["answer"] == ["paris"]
    for name in ("ablation", "shapley", "gradient"):  # the country carries the answer, by every method
        attr = result[name]
        assert attr.input_tokens[attr.seq_attr.argmax()] == "france", name
        assert attr.seq_attr.max() > 5 * attr.seq_attr.abs().sort().values[-2], name
    assert "france" in Path(result["html"]).read_text()
    contrast = result["contrast"]  # why paris and not madrid: the country
    assert contrast.input_tokens[contrast.seq_attr.argmax()] == "france"
    assert float(contrast.step_scores["probability"][0]) > 0.5 and float(contrast.step_scores["contrast_prob_diff"][0]) > 0
    assert "contrast_prob_diff" in Path(result["matrix"]).read_text()


def test_sentence_classifier_example(tmp_path, monkeypatch):
    demo = load("sentence_classifier")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main(n_show=4)
    assert result["accuracy"] > 0.95
    assert result["delta"].abs().max() < 0.05  # 32 Gauss-Legendre steps through a real 6-layer BERT
    for tokens, scores in zip(result["tokens"], result["scores"]):  # the sentiment word decides
        assert tokens[int(scores.argmax())] in demo.GOOD + demo.BAD
    page = Path(result["html"]).read_text()
    assert all(t in page for t in result["tokens"][0] if t.isalpha())


def test_shap_plots_demo(tmp_path, monkeypatch):
    demo = load("shap_plots")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main(n_explain=16)
    assert result["gap"] < 1e-5  # Owen values add up to each example's change
    assert "[CLS]" in result["tokens"] and len(result["top features"]) == 3
    assert (tmp_path / "shap_plots.png").stat().st_size > 1000 and (tmp_path / "shap_text.png").stat().st_size > 1000


def test_patching_demo(tmp_path, monkeypatch):
    demo = load("patching")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main()
    assert result["accuracy"] > 0.9  # it learned to copy
    assert result["AtP vs patching"] > 0.9 and result["GradDrop vs |patching|"] > 0.8
    assert result["circuit recovered"] > 0.75 and len(result["edges"]) == 8  # the top 32 edges
    assert (tmp_path / "patching.png").stat().st_size > 1000


def test_cam_family_demo(tmp_path, monkeypatch):
    demo = load("cam_family")
    monkeypatch.setattr(demo, "OUT", str(tmp_path))
    result = demo.main(n_show=2, n_score=32)
    assert result["accuracy"] > 0.9
    assert result["hits Score-CAM"] > 0.6  # its hottest pixel is on the digit's ink for most images
    assert (tmp_path / "cam_family.png").stat().st_size > 1000
