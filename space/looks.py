"""Prompt keywords that steer the offline stylizer, and the look each one paints.

The real Space reads the prompt with a diffusion model; the offline engine only looks for a few
documented words (see docs/stylizer.md). Everything else in the prompt is ignored, so the default
Ghibli prompt gives the default look: a warm summer afternoon in gouache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["KEYWORDS", "Look", "look_for_prompt"]

RGB = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Look:
    """Every knob of one look; colours are linear-ish sRGB in 0..1."""

    name: str
    sky_top: RGB  # zenith colour of the painted sky
    sky_horizon: RGB  # colour where the sky meets the land
    cloud_light: RGB  # sunlit side of the painted clouds
    cloud_shade: RGB  # underside of the painted clouds
    clouds: tuple[int, int]  # how many cumulus clouds (min, max); the seed picks
    stars: bool  # night skies get stars instead of a sunlit haze
    shadow: RGB  # the darkest colour anything may take (lifted shadows, never black)
    highlight: RGB  # the brightest colour (cream, never pure white)
    cast: RGB  # multiplied into the whole picture (warmth of the light)
    saturation: float  # chroma gain in Lab
    exposure: float  # lightness gain before the tone curve
    green_shift: float  # hue turn of foliage (degrees; + is towards yellow)
    line_strength: float  # opacity of the line art
    line_colour: RGB
    flatness: float  # 0 keeps the smoothed shading, 1 is pure palette colours
    paper: float  # strength of the paper grain and brush streaks
    blotch: float  # strength of the uneven, low-frequency pigment wash
    bleed: float  # watercolour edge darkening where painted regions meet
    wet: float  # wet-in-wet softening of the colour layer (blur, in pixels at 768)


DAY = Look(
    name="day",
    sky_top=(0.27, 0.56, 0.86),
    sky_horizon=(0.80, 0.90, 0.95),
    cloud_light=(1.0, 0.985, 0.94),
    cloud_shade=(0.66, 0.73, 0.86),
    clouds=(2, 4),
    stars=False,
    shadow=(0.16, 0.14, 0.20),
    highlight=(1.0, 0.975, 0.91),
    cast=(1.03, 1.0, 0.95),
    saturation=1.18,
    exposure=1.06,
    green_shift=8.0,
    line_strength=0.7,
    line_colour=(0.22, 0.16, 0.14),
    flatness=0.6,
    paper=1.0,
    blotch=1.0,
    bleed=0.0,
    wet=0.0,
)

_TIME_OF_DAY: dict[str, dict[str, Any]] = {
    "sunset": {
        "sky_top": (0.30, 0.30, 0.58),
        "sky_horizon": (1.0, 0.68, 0.45),
        "cloud_light": (1.0, 0.78, 0.60),
        "cloud_shade": (0.56, 0.40, 0.58),
        "clouds": (2, 4),
        "shadow": (0.20, 0.13, 0.22),
        "highlight": (1.0, 0.92, 0.78),
        "cast": (1.10, 0.95, 0.82),
        "saturation": 1.12,
        "exposure": 1.0,
        "green_shift": 12.0,
    },
    "night": {
        "sky_top": (0.05, 0.09, 0.24),
        "sky_horizon": (0.20, 0.30, 0.50),
        "cloud_light": (0.40, 0.45, 0.62),
        "cloud_shade": (0.09, 0.11, 0.24),
        "clouds": (0, 2),
        "stars": True,
        "shadow": (0.07, 0.08, 0.16),
        "highlight": (0.98, 0.90, 0.70),
        "cast": (0.62, 0.72, 0.95),
        "saturation": 0.9,
        "exposure": 0.82,
        "green_shift": -6.0,
    },
}
_SEASON: dict[str, dict[str, Any]] = {
    "autumn": {"green_shift": 55.0, "cast": (1.08, 0.98, 0.86), "saturation": 1.2},
    "winter": {"green_shift": 0.0, "cast": (0.96, 1.0, 1.06), "saturation": 0.78, "exposure": 1.1},
    "rain": {
        "sky_top": (0.52, 0.58, 0.66),
        "sky_horizon": (0.78, 0.82, 0.84),
        "cloud_light": (0.88, 0.89, 0.90),
        "cloud_shade": (0.50, 0.54, 0.62),
        "clouds": (5, 7),
        "cast": (0.97, 1.0, 1.03),
        "saturation": 0.92,
    },
}
_MEDIUM: dict[str, dict[str, Any]] = {
    "watercolor": {
        "line_strength": 0.4,
        "flatness": 0.35,
        "paper": 2.5,
        "blotch": 0.6,
        "bleed": 0.6,
        "wet": 2.5,
        "saturation": 0.95,
        "exposure": 1.1,
    },
}

# Words a user may type, mapped to the canonical keyword above.
KEYWORDS: dict[str, str] = {
    "sunset": "sunset",
    "sunrise": "sunset",
    "dusk": "sunset",
    "dawn": "sunset",
    "golden hour": "sunset",
    "evening": "sunset",
    "night": "night",
    "moonlight": "night",
    "moonlit": "night",
    "starry": "night",
    "autumn": "autumn",
    "fall": "autumn",
    "winter": "winter",
    "snow": "winter",
    "snowy": "winter",
    "rain": "rain",
    "rainy": "rain",
    "overcast": "rain",
    "cloudy": "rain",
    "watercolor": "watercolor",
    "watercolour": "watercolor",
}
_WORDS = re.compile(r"\b(" + "|".join(sorted(map(re.escape, KEYWORDS), key=len, reverse=True)) + r")\b")


def look_for_prompt(prompt: str) -> Look:
    """The look a prompt asks for: time of day, then season or weather, then medium.

    When a prompt names two times of day, night wins over sunset (it changes more of the picture);
    at sunset or night, rain brings its clouds and muted colours but keeps that sky's colours.
    """
    found = {KEYWORDS[m] for m in _WORDS.findall(prompt.lower())}
    time_of_day = next((name for name in ("night", "sunset") if name in found), None)
    look, names = DAY, list[str]()
    if time_of_day:
        look = replace(look, **_TIME_OF_DAY[time_of_day])
        names.append(time_of_day)
    for group in (_SEASON, _MEDIUM):
        for name, changes in group.items():
            if name in found:
                sky_keys = ("sky_", "cloud_") if time_of_day else ()
                look = replace(look, **{k: v for k, v in changes.items() if not k.startswith(sky_keys)})
                names.append(name)
    return replace(look, name="+".join(names) or "day")
