"""The drawn parameters of every perturbation, pinned: a refactor must not change what a seed draws.

``perturb_params.json`` holds, for every registered perturbation, every spatial size it takes,
every severity and a few seeds, what :meth:`Perturbation.make_params` drew. Saved audits record
these values, and comparing two audits assumes the same seed still means the same perturbation.
A change that alters a draw on purpose regenerates the file: ``python tests/test_perturb_params.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segrob.perturb import PERTURBATIONS
from segrob.perturb.seeding import generator

PINNED = Path(__file__).with_name("perturb_params.json")
SEEDS = (0, 11, 2**40 + 3)
CHANNELS = 3  # StainShift draws one scale and offset per channel
SIZE = {2: (20, 24), 3: (8, 10, 12)}


def draw_all() -> dict[str, Any]:
    """``"name/dims/severity/seed"`` -> the drawn parameters, as JSON would store them."""
    drawn = {}
    for name, cls in PERTURBATIONS.items():
        member = cls()
        for dims in member.spatial_dims:
            shape = (2, CHANNELS, *SIZE[dims])
            for severity in range(1, member.n_levels + 1):
                for seed in SEEDS:
                    params = member.make_params(severity, generator(seed), image_shape=shape)
                    drawn[f"{name}/{dims}/{severity}/{seed}"] = params
    return json.loads(json.dumps(drawn))


def test_every_draw_equals_the_pinned_one():
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    drawn = draw_all()
    assert sorted(drawn) == sorted(pinned)
    # Key order too: it is the order a saved report lists the parameters in.
    changed = [key for key in pinned if list(drawn[key].items()) != list(pinned[key].items())]
    assert not changed, f"{len(changed)} draws changed, first {changed[0]}: {drawn[changed[0]]}"


def test_pinned_draws_cover_randomness():
    """The file pins real draws: random signs and field seeds differ across seeds."""
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    seeds = {pinned[f"gaussian_noise/2/3/{seed}"]["field_seed"] for seed in SEEDS}
    assert len(seeds) == len(SEEDS)
    assert "field_seed" not in pinned["gaussian_blur/3/1/0"]


if __name__ == "__main__":
    lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in sorted(draw_all().items())]
    PINNED.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
