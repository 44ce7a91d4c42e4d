"""Before/after sheets of the offline stylizer.

    uv run python scripts/stylizer_sheet.py        # docs/stylizer-sheet.jpg and docs/stylizer-presets.jpg
    uv run python scripts/stylizer_sheet.py my.jpg other.png -o /tmp/sheet.jpg --presets-output /tmp/p.jpg

The first sheet pairs each photo with its painting (the page's "Classic" prompt); the second
paints a few photos with every preset of the web page (their prompts are read from
ingest/static/state.js, so the sheet follows the page). Without paths it uses the redistributable
photos in docs/stylizer-photos/ (see the README there for sources and licences) and the
procedural scenes of space/scenes.py and space/samples.py for what no photo covers.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from space.samples import meadow
from space.scenes import city_night, group, interior, structures
from space.stylizer import prepare, stylize

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "docs" / "stylizer-photos"
STATE_JS = ROOT / "ingest" / "static" / "state.js"
LABEL_HEIGHT = 22

# (label, source): a file in docs/stylizer-photos/ or a procedural scene.
SHEET: list[tuple[str, str | Callable[[], Image.Image]]] = [
    ("portrait (photo)", "astronaut.jpg"),
    ("portrait (photo)", "grace-hopper.jpg"),
    ("pet (photo)", "chelsea-the-cat.jpg"),
    ("food (photo)", "coffee.jpg"),
    ("trees against the sky (photo, CC BY 2.0 danielbuechele)", "summer-palace.jpg"),
    ("launch towers at dusk (photo)", "rocket-at-dusk.jpg"),
    ("city at night (generated)", lambda: city_night(960, 720)),
    ("interior (generated)", lambda: interior(960, 720)),
    ("group (generated)", lambda: group(960, 720)),
    ("landscape (generated)", lambda: meadow(960, 640)),
    ("masts, wires, branches (generated)", lambda: structures(960, 640).image),
    ("the same at night (generated)", lambda: structures(960, 640, night=True).image),
]
PRESET_PHOTOS = ["summer-palace.jpg", "chelsea-the-cat.jpg", "coffee.jpg"]


def page_presets() -> list[tuple[str, str]]:
    """(name, prompt) of each preset of the web page, in its order."""
    js = STATE_JS.read_text(encoding="utf-8")
    default = re.search(r'DEFAULT_PROMPT\s*=\s*"([^"]+)"', js)
    if default is None:
        raise SystemExit(f"no DEFAULT_PROMPT in {STATE_JS}")
    pairs = re.findall(r'\[\s*"preset\.(\w+)"\s*,\s*(DEFAULT_PROMPT|"[^"]*")\s*\]', js)
    return [(key, default[1] if value == "DEFAULT_PROMPT" else value.strip('"')) for key, value in pairs]


def _label(tile: Image.Image, text: str) -> Image.Image:
    framed = Image.new("RGB", (tile.width, tile.height + LABEL_HEIGHT), "white")
    framed.paste(tile, (0, LABEL_HEIGHT))
    ImageDraw.Draw(framed).text((6, 5), text, fill=(40, 40, 40))
    return framed


def _paint(photo: Image.Image, size: tuple[int, int], seed: int, prompt: str) -> Image.Image:
    """Painted at 2x the tile, as the Space would at 512-1024, then shrunk for the sheet."""
    painted = stylize(photo, size[0] * 2, size[1] * 2, seed, prompt)
    return painted.resize(size, Image.Resampling.LANCZOS)


def _grid(cells: list[Image.Image], columns: int) -> Image.Image:
    cw, ch = cells[0].size
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (cw * columns, ch * rows), "white")
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % columns) * cw, (i // columns) * ch))
    return sheet


def before_after(
    photos: list[tuple[str, Image.Image]], prompt: str, tile: tuple[int, int], seed: int
) -> Image.Image:
    """Photo and painting side by side, two pairs per row."""
    cells: list[Image.Image] = []
    for name, photo in photos:
        cells.append(_label(prepare(photo, *tile), name))
        cells.append(_label(_paint(photo, tile, seed, prompt), f"painted, Classic, seed {seed}"))
    return _grid(cells, 4)


def presets_sheet(photos: list[tuple[str, Image.Image]], tile: tuple[int, int], seed: int) -> Image.Image:
    """One row per photo: the photo, then one painting per preset of the page."""
    cells: list[Image.Image] = []
    presets = page_presets()
    for name, photo in photos:
        cells.append(_label(prepare(photo, *tile), name))
        cells += [_label(_paint(photo, tile, seed, prompt), key) for key, prompt in presets]
    return _grid(cells, len(presets) + 1)


def _save(sheet: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=84, optimize=True)
    print(f"{path}: {sheet.width}x{sheet.height}, {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "photos", nargs="*", type=Path, help="photos to paint; default: docs/stylizer-photos/"
    )
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "stylizer-sheet.jpg")
    parser.add_argument("--presets-output", type=Path, default=ROOT / "docs" / "stylizer-presets.jpg")
    parser.add_argument("--tile", type=int, default=300, help="tile width in pixels (height is 3/4 of it)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    tile = (args.tile, args.tile * 3 // 4)
    if args.photos:
        photos = [(path.name, Image.open(path)) for path in args.photos]
        chosen = photos[:3]
    else:
        photos = [
            (name, Image.open(PHOTOS / source) if isinstance(source, str) else source())
            for name, source in SHEET
        ]
        by_file = {source: photo for (_, source), (_, photo) in zip(SHEET, photos, strict=True)}
        chosen = [(file, by_file[file]) for file in PRESET_PHOTOS]
    classic = dict(page_presets())["classic"]
    _save(before_after(photos, classic, tile, args.seed), args.output)
    _save(presets_sheet(chosen, (tile[0] * 2 // 3, tile[1] * 2 // 3), args.seed), args.presets_output)


if __name__ == "__main__":
    main()
