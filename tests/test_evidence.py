"""``segrob/evidence.json``: every published number, pinned to the table or archive file it cites."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from segrob.errors import SegrobError
from segrob.evidence import load_evidence, parse_evidence

SKIP_RESULTS = "to_skip_or_not@42b0b28: results/foreground-results/dice_for_"
SUMMARY = "to_skip_or_not@d48e6c4: docs/data/dice-summary.csv"
FBR = "context_vs_fbr@7e49948: results/"

# (kind, what identifies the finding, its stored values, a fragment its cite must contain)
PINNED = [
    ("synthetic", ("low", 0.1, "unet"), {"dice": 0.990}, SKIP_RESULTS + "unet.csv"),
    ("synthetic", ("low", 0.1, "noskip"), {"dice": 0.988}, SKIP_RESULTS + "NoSkipUNet.csv"),
    ("synthetic", ("low", 0.1, "attention"), {"dice": 0.997}, SKIP_RESULTS + "AttentionUNet.csv"),
    ("synthetic", ("medium", 0.5, "unet"), {"dice": 0.981}, SKIP_RESULTS + "unet.csv"),
    ("synthetic", ("medium", 0.5, "noskip"), {"dice": 0.981}, SKIP_RESULTS + "NoSkipUNet.csv"),
    ("synthetic", ("medium", 0.5, "attention"), {"dice": 0.988}, SKIP_RESULTS + "AttentionUNet.csv"),
    ("synthetic", ("high", 0.8, "unet"), {"dice": 0.844}, SKIP_RESULTS + "unet.csv"),
    ("synthetic", ("high", 0.8, "noskip"), {"dice": 0.890}, SKIP_RESULTS + "NoSkipUNet.csv"),
    ("synthetic", ("high", 0.8, "attention"), {"dice": 0.938}, SKIP_RESULTS + "AttentionUNet.csv"),
    ("synthetic", ("high", 0.9, "unet"), {"dice": 0.510}, SKIP_RESULTS + "unet.csv"),
    ("synthetic", ("high", 0.9, "noskip"), {"dice": 0.540}, SKIP_RESULTS + "NoSkipUNet.csv"),
    ("synthetic", ("high", 0.9, "attention"), {"dice": 0.727}, SKIP_RESULTS + "AttentionUNet.csv"),
    ("clinical", ("BUSI", "unet"), {"easier": 0.736, "in_domain": 0.763, "harder": 0.723}, SUMMARY),
    ("clinical", ("BUSI", "noskip"), {"easier": 0.749, "in_domain": 0.761, "harder": 0.735}, SUMMARY),
    ("clinical", ("BUSI", "attention"), {"easier": 0.799, "in_domain": 0.795, "harder": 0.646},
     SUMMARY),
    ("clinical", ("heart MRI", "unet"), {"easier": 0.805, "in_domain": 0.901, "harder": 0.492},
     SUMMARY),
    ("clinical", ("heart MRI", "noskip"), {"easier": 0.823, "in_domain": 0.833, "harder": 0.814},
     SUMMARY),
    ("clinical", ("heart MRI", "attention"), {"easier": 0.890, "in_domain": 0.929, "harder": 0.142},
     SUMMARY),
    ("clinical", ("spleen CT", "unet"), {"easier": 0.107, "in_domain": 0.746, "harder": 0.078},
     SUMMARY),
    ("clinical", ("spleen CT", "noskip"), {"easier": 0.271, "in_domain": 0.606, "harder": 0.562},
     SUMMARY),
    ("clinical", ("spleen CT", "attention"), {"easier": 0.299, "in_domain": 0.928, "harder": 0.308},
     SUMMARY),
    ("texture_categories", ("noskip",), {"best_by_dice": [5, 8], "best_by_hausdorff": [7, 8]},
     "Kamath et al. 2025, abstract"),
    ("context_3d", ("spleen CT", "unet"), {"patch": [32, 96], "dice": [0.721, 0.932]},
     FBR + "spleen-unet/spleen-unet-{32,96}-{1,2,3}.csv"),
    ("context_3d", ("spleen CT", "unetr"), {"patch": [32, 96], "dice": [0.482, 0.915]},
     FBR + "spleen-unetr/spleen-unetr-{32,96}-{1,2,3}.csv"),
    ("context_3d", ("spleen CT", "attention"), {"patch": [32, 96], "dice": [0.087, 0.635]},
     FBR + "spleen-atunet/spleen-atunet-{32,96}-{1,2,3}.csv"),
    ("fbr_3d", (96, "unet"), {"in_range": 0.994, "out_of_range": 0.976},
     FBR + "synthetic-unet/synthetic-unet-96-{1,2,3}.csv"),
    ("fbr_3d", (96, "attention"), {"in_range": 0.970, "out_of_range": 0.714},
     FBR + "synthetic-atunet/synthetic-atunet-96-{1,2,3}.csv"),
    ("fbr_3d", (96, "unetr"), {"in_range": 0.994, "out_of_range": 0.718},
     FBR + "synthetic-unetr/synthetic-unetr-96-{1,2,3}.csv"),
]
_IDENTITY = {
    "synthetic": ("complexity", "blend"), "clinical": ("dataset",), "texture_categories": (),
    "context_3d": ("dataset",), "fbr_3d": ("patch",),
}


def raw_evidence() -> dict:
    return json.loads(resources.files("segrob").joinpath("evidence.json").read_text(encoding="utf-8"))


def test_every_stored_value_is_pinned_to_its_citation():
    stored = {
        (f.kind, (*(f.fields[k] for k in _IDENTITY[f.kind]), f.arch)): f
        for f in load_evidence().findings
    }
    assert set(stored) == {(kind, key) for kind, key, _, _ in PINNED}
    for kind, key, values, cite in PINNED:
        finding = stored[(kind, key)]
        assert {name: finding.fields[name] for name in values} == values, (kind, key)
        assert cite in finding.cite, (kind, key, finding.cite)


def test_the_spleen_easier_values_printed_in_2023_are_kept_as_superseded():
    spleen = {f.arch: f.fields for f in load_evidence().select("clinical", dataset="spleen CT")}
    assert {arch: f["superseded"]["easier"] for arch, f in spleen.items()} == {
        "unet": 0.394, "noskip": 0.486, "attention": 0.809}
    for fields in spleen.values():
        assert fields["superseded"]["cite"].startswith("Kamath et al. 2023, Table 1")
    assert all("superseded" not in f.fields for f in load_evidence().select("clinical")
               if f.fields["dataset"] != "spleen CT")


def test_background_blur_lowered_clinical_dice_in_8_of_9_cells():
    clinical = load_evidence().select("clinical")
    lowered = [f for f in clinical if f.value("easier") < f.value("in_domain")]
    assert (len(lowered), len(clinical)) == (8, 9)
    assert [(f.fields["dataset"], f.arch) for f in clinical if f not in lowered] == [
        ("BUSI", "attention")]


def test_the_texture_category_result_is_the_no_skip_groups():
    (texture,) = load_evidence().select("texture_categories")
    assert "no-skip U-Net and no-skip V-Net" in texture.fields["group"]
    assert texture.body().startswith("the No-Skip group")


def test_statements_cite_their_source():
    statements = {s.key: s for s in load_evidence().statements}
    assert {key: (s.source.key, s.dims) for key, s in statements.items()} == {
        "dense_skips_fragile": ("kamath2025", 2), "wider_texture_range": ("kamath2025", 2),
        "blend_directions": ("kamath2025", 2), "fbr_both_directions": ("kamath2022", 3),
        "diverse_fbr_training": ("kamath2022", 3),
    }
    assert SUMMARY in statements["dense_skips_fragile"].cite
    assert all(n in statements["dense_skips_fragile"].text for n in (".925", ".008", ".908", ".000"))
    assert "foreground_ratios-96.csv" in statements["fbr_both_directions"].cite
    assert "155 below, 94 above" in statements["fbr_both_directions"].text


def test_sources_and_architectures():
    from segrob.models.registry import MODELS

    evidence = load_evidence()
    assert set(evidence.sources) == {"kamath2023", "kamath2025", "kamath2022"}
    assert "109364" in evidence.sources["kamath2025"].citation
    assert set(evidence.architectures) == set(MODELS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["clinical"][0].update(source="nobody2020"), "unknown source"),
        (lambda d: d["clinical"][0].update(arch="segformer"), "unknown architecture"),
        (lambda d: d["clinical"][0].update(harder=1.7), "Dice must lie in [0, 1]"),
        (lambda d: d["context_3d"][0].update(dice=[0.5, -0.1]), "Dice must lie in [0, 1]"),
        (lambda d: d["clinical"][6]["superseded"].update(easier=3.94), "Dice must lie in [0, 1]"),
        (lambda d: d["synthetic"][0].pop("cite"), "must cite the table or file"),
        (lambda d: d["statements"][0].update(source="nobody2020"), "unknown source"),
        (lambda d: d.update(kind="other"), "not a segrob evidence file"),
        (lambda d: d.pop("fbr_3d"), "malformed evidence file"),
    ],
)
def test_a_defective_evidence_file_is_one_clear_error(edit, message):
    data = raw_evidence()
    edit(data)
    with pytest.raises(SegrobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_evidence(data)
