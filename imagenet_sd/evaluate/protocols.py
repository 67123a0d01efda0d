"""What an attack did, as numbers a published result can be matched on: epsilon, PGD's step (alpha), its
number of steps and whether it starts at a random point of the ball.

A protocol is written `eps=1/255 alpha=2/225 steps=20 random_start=true` (data/references.tsv): values are
numbers or fractions in the [0, 1] pixel range, so a reference states exactly what its code passed to the
attack (the public benchmark of the released checkpoints passed alpha=2/225 to torchattacks' PGD).
"""

from __future__ import annotations

import math

from imagenet_sd.config import schema_defaults

KEYS = ("eps", "alpha", "steps", "random_start")


def number(value) -> float:
    """A number, or a fraction written `a/b` (`2/225`), as a float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    top, slash, bottom = text.partition("/")
    try:
        result = float(top) / float(bottom) if slash else float(top)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{value!r} is not a number or a fraction such as 2/225") from None
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite number")
    return result


def attack_settings(config: dict, attack: str) -> dict:
    """A named attack's settings, schema defaults filled in. Unset optional keys (null: PGD's `alpha`) are left
    out, so adding an optional key to the schema changes no existing attack's params (no job reruns)."""
    settings = {**schema_defaults("robustness", "attacks"), **config["robustness"]["attacks"][attack]}
    return {key: value for key, value in settings.items() if value is not None}


def pgd_alpha(settings: dict, eps: float) -> float:
    """PGD's step in [0, 1] pixel units: the attack's explicit `alpha`, else `step_size` (a fraction of eps)."""
    if settings.get("alpha") is not None:
        return number(settings["alpha"])
    return settings["step_size"] * eps


def protocol(settings: dict, epsilon_255: float) -> str:
    """The protocol string of an attack run with `settings` (the attack's config) at `epsilon_255` / 255:
    radii and steps in units of 1/255, e.g. `eps=1/255 alpha=0.25/255 steps=20 random_start=true`."""
    eps = epsilon_255 / 255
    parts = [f"eps={epsilon_255:.10g}/255"]
    if settings["method"] == "pgd":
        parts += [
            f"alpha={pgd_alpha(settings, eps) * 255:.10g}/255",
            f"steps={settings['steps']}",
            f"random_start={str(bool(settings['random_start'])).lower()}",
        ]
    return " ".join(parts)


def parse_protocol(text: str) -> dict:
    """`eps=1/255 steps=20 random_start=true` -> {"eps": 0.0039.., "steps": 20.0, "random_start": 1.0}.
    Raises ValueError naming an unknown key or a bad value."""
    parsed = {}
    for part in str(text).split():
        key, equals, value = part.partition("=")
        if not equals or key not in KEYS:
            raise ValueError(f"{part!r} is not one of {', '.join(k + '=...' for k in KEYS)}")
        if key == "random_start":
            if value not in ("true", "false"):
                raise ValueError(f"random_start={value!r} is not true or false")
            parsed[key] = 1.0 if value == "true" else 0.0
        else:
            parsed[key] = number(value)
    return parsed


def same_protocol(wanted: str, have: str) -> bool:
    """Whether an attack run with protocol `have` is one a reference stating `wanted` was measured with: every
    key the reference states must hold (an attack without a random start is not the reference's PGD)."""
    want, got = parse_protocol(wanted), parse_protocol(have)
    return all(k in got and math.isclose(v, got[k], rel_tol=1e-6) for k, v in want.items())
