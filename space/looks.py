"""Prompt keywords that steer the offline stylizer, and the look each one paints.

The real Space reads the prompt with a diffusion model; the offline engine only looks for a few
documented words (see docs/stylizer.md). Everything else in the prompt is ignored, so the default
Ghibli prompt gives the default look: a warm summer afternoon in gouache. Every preset of the web
page names at least one keyword, so no two presets paint the same picture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["KEYWORDS", "Look", "look_for_prompt"]

RGB = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Look:
    """Every knob of one look; colours are sRGB in 0..1."""

    name: str
    sky_top: RGB  # zenith colour of the painted sky
    sky_horizon: RGB  # colour where the sky meets the land
    cloud_light: RGB  # sunlit side of the painted clouds
    cloud_shade: RGB  # underside of the painted clouds
    clouds: tuple[int, int]  # how many cumulus clouds (min, max); the seed picks
    cloud_size: float  # cloud height factor: tall summer cumulus > 1
    stars: bool  # night skies get stars instead of a sunlit haze
    shadow: RGB  # the darkest colour anything may take (lifted shadows, never black)
    highlight: RGB  # the brightest colour (cream, never pure white)
    cast: RGB  # multiplied into the whole picture (warmth of the light)
    saturation: float  # chroma gain in Lab
    exposure: float  # lightness gain before the tone curve
    contrast: float  # midtone S-curve strength (0 flat, 0.5 punchy)
    green_shift: float  # hue turn of foliage (degrees; + is towards yellow)
    foliage_gain: float  # extra chroma of foliage (0.3 = 30 % more)
    line_strength: float  # opacity of the line art
    line_colour: RGB
    flatness: float  # 0 keeps the smoothed shading, 1 is pure palette colours
    detail: float  # how much of the photo's fine detail (tiles, leaves, fur) shows through
    strokes: float  # visible brush strokes that follow the forms
    paper: float  # strength of the paper grain
    blotch: float  # strength of the uneven, low-frequency pigment wash
    bleed: float  # watercolour edge darkening where painted regions meet
    wet: float  # wet-in-wet softening of the colour layer (blur, in pixels at 768)
    rain: float  # opacity of falling rain streaks
    dapple: float  # patches of sunlight through leaves (forest light)
    lamps: float  # warm glow around bright lights (lit windows, street lamps)


DAY = Look(
    name="day",
    sky_top=(0.27, 0.56, 0.86),
    sky_horizon=(0.80, 0.90, 0.95),
    cloud_light=(1.0, 0.985, 0.94),
    cloud_shade=(0.66, 0.73, 0.86),
    clouds=(2, 4),
    cloud_size=1.0,
    stars=False,
    shadow=(0.12, 0.10, 0.16),
    highlight=(1.0, 0.975, 0.92),
    cast=(1.03, 1.0, 0.95),
    saturation=1.2,
    exposure=1.0,
    contrast=0.35,
    green_shift=8.0,
    foliage_gain=0.12,
    line_strength=0.75,
    line_colour=(0.20, 0.14, 0.13),
    flatness=0.65,
    detail=0.35,
    strokes=1.0,
    paper=1.0,
    blotch=1.0,
    bleed=0.0,
    wet=0.0,
    rain=0.0,
    dapple=0.0,
    lamps=0.0,
)

_TIME_OF_DAY: dict[str, dict[str, Any]] = {
    "sunset": {
        "sky_top": (0.30, 0.30, 0.58),
        "sky_horizon": (1.0, 0.68, 0.45),
        "cloud_light": (1.0, 0.78, 0.60),
        "cloud_shade": (0.56, 0.40, 0.58),
        "shadow": (0.18, 0.10, 0.20),
        "highlight": (1.0, 0.92, 0.78),
        "cast": (1.12, 0.94, 0.78),
        "saturation": 1.15,
        "exposure": 1.0,
        "green_shift": 14.0,
        "lamps": 0.4,
    },
    "night": {
        "sky_top": (0.05, 0.09, 0.24),
        "sky_horizon": (0.20, 0.30, 0.50),
        "cloud_light": (0.40, 0.45, 0.62),
        "cloud_shade": (0.09, 0.11, 0.24),
        "clouds": (0, 2),
        "stars": True,
        "shadow": (0.06, 0.07, 0.15),
        "highlight": (0.98, 0.90, 0.70),
        "cast": (0.66, 0.76, 0.98),
        "saturation": 0.95,
        "exposure": 0.9,
        "contrast": 0.2,
        "green_shift": -6.0,
        "lamps": 1.0,
    },
}
_WEATHER: dict[str, dict[str, Any]] = {
    "autumn": {"green_shift": 55.0, "cast": (1.08, 0.98, 0.86), "saturation": 1.25, "foliage_gain": 0.3},
    "winter": {
        "green_shift": 0.0,
        "cast": (0.95, 1.0, 1.07),
        "saturation": 0.75,
        "exposure": 1.1,
        "shadow": (0.18, 0.20, 0.28),
    },
    "rain": {
        "sky_top": (0.40, 0.45, 0.53),
        "sky_horizon": (0.66, 0.70, 0.74),
        "cloud_light": (0.80, 0.82, 0.85),
        "cloud_shade": (0.42, 0.46, 0.54),
        "clouds": (5, 7),
        "cloud_size": 0.8,
        "shadow": (0.09, 0.11, 0.17),
        "highlight": (0.93, 0.95, 0.97),
        "cast": (0.86, 0.95, 1.08),
        "saturation": 0.68,
        "exposure": 0.9,
        "contrast": 0.2,
        "green_shift": -8.0,
        "foliage_gain": 0.0,
        "rain": 1.0,
        "lamps": 0.8,
    },
}
# A rainy evening is rain with the light going: dimmer, bluer, lamps lit. Not a sunset.
_RAINY_EVENING: dict[str, Any] = {
    "sky_top": (0.26, 0.29, 0.40),
    "sky_horizon": (0.52, 0.53, 0.60),
    "cloud_light": (0.62, 0.63, 0.70),
    "cloud_shade": (0.30, 0.32, 0.42),
    "exposure": 0.8,
    "cast": (0.82, 0.90, 1.10),
    "lamps": 1.0,
}
_SETTING: dict[str, dict[str, Any]] = {
    "summer": {
        "sky_top": (0.16, 0.48, 0.92),
        "sky_horizon": (0.70, 0.87, 0.99),
        "cloud_light": (1.0, 1.0, 0.97),
        "cloud_shade": (0.62, 0.72, 0.90),
        "clouds": (3, 5),
        "cloud_size": 1.4,
        "cast": (1.06, 1.02, 0.90),
        "saturation": 1.4,
        "exposure": 1.12,
        "green_shift": 20.0,
        "foliage_gain": 0.35,
    },
    "forest": {
        "sky_top": (0.42, 0.66, 0.78),
        "sky_horizon": (0.84, 0.93, 0.84),
        "cloud_light": (0.98, 1.0, 0.93),
        "cloud_shade": (0.62, 0.74, 0.76),
        "clouds": (1, 3),
        "shadow": (0.04, 0.13, 0.11),
        "highlight": (0.98, 1.0, 0.86),
        "cast": (0.97, 1.02, 0.95),
        "saturation": 1.25,
        "exposure": 0.95,
        "green_shift": -2.0,
        "foliage_gain": 0.45,
        "dapple": 1.0,
    },
    "seaside": {
        "sky_top": (0.08, 0.48, 0.92),
        "sky_horizon": (0.74, 0.92, 1.0),
        "cloud_light": (1.0, 1.0, 1.0),
        "cloud_shade": (0.66, 0.78, 0.92),
        "clouds": (2, 3),
        "cast": (0.97, 1.01, 1.05),
        "saturation": 1.25,
        "exposure": 1.1,
    },
}
_MEDIUM: dict[str, dict[str, Any]] = {
    "watercolor": {
        "line_strength": 0.35,
        "flatness": 0.3,
        "detail": 0.12,
        "strokes": 0.4,
        "paper": 3.0,
        "blotch": 0.8,
        "bleed": 0.7,
        "wet": 3.0,
        "saturation": 1.0,
        "exposure": 1.14,
        "contrast": 0.1,
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
    "drizzle": "rain",
    "summer": "summer",
    "meadow": "summer",
    "sunny": "summer",
    "forest": "forest",
    "woods": "forest",
    "woodland": "forest",
    "jungle": "forest",
    "seaside": "seaside",
    "beach": "seaside",
    "coast": "seaside",
    "ocean": "seaside",
    "harbour": "seaside",
    "harbor": "seaside",
    "watercolor": "watercolor",
    "watercolour": "watercolor",
}
_WORDS = re.compile(r"\b(" + "|".join(sorted(map(re.escape, KEYWORDS), key=len, reverse=True)) + r")\b")
_SKY_KEYS = ("sky_", "cloud_", "clouds", "stars")
_NIGHT_KEYS = (*_SKY_KEYS, "cast", "exposure", "shadow", "highlight")  # the night's own light


def look_for_prompt(prompt: str) -> Look:
    """The look a prompt asks for: time of day, then weather or season, then setting, then medium.

    Night wins over sunset. At night the later groups keep the night sky; at sunset they keep the
    sunset sky, except rain, which turns an evening into a dim, blue-grey rainy dusk.
    """
    found = {KEYWORDS[m] for m in _WORDS.findall(prompt.lower())}
    time_of_day = next((name for name in ("night", "sunset") if name in found), None)
    look, names = DAY, list[str]()
    if time_of_day:
        look = replace(look, **_TIME_OF_DAY[time_of_day])
        names.append(time_of_day)
    for group in (_WEATHER, _SETTING, _MEDIUM):
        for name, changes in group.items():
            if name not in found:
                continue
            skip: tuple[str, ...] = ()
            if time_of_day == "night":
                skip = _NIGHT_KEYS
            elif time_of_day == "sunset" and name != "rain":
                skip = _SKY_KEYS
            look = replace(look, **{k: v for k, v in changes.items() if not k.startswith(skip)})
            if name == "rain" and time_of_day == "sunset":
                look = replace(look, **_RAINY_EVENING)
            names.append(name)
    return replace(look, name="+".join(names) or "day")
