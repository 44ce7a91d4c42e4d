"""Before/after contact sheet of the offline stylizer.

    uv run python scripts/stylizer_sheet.py                      # generated photos -> docs/stylizer-sheet.jpg
    uv run python scripts/stylizer_sheet.py my.jpg other.png -o /tmp/sheet.jpg --looks sunset,night

One row per photo: the photo (cover-cropped to the tile), then the painting with the default prompt,
then one painting per extra look (prompt keywords, see docs/stylizer.md). Without paths it paints
the procedural photos of space/samples.py, so the sheet needs no binary files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from space.samples import SAMPLES
from space.stylizer import prepare, stylize

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
LABEL_HEIGHT = 22


def _label(tile: Image.Image, text: str) -> Image.Image:
    framed = Image.new("RGB", (tile.width, tile.height + LABEL_HEIGHT), "white")
    framed.paste(tile, (0, LABEL_HEIGHT))
    ImageDraw.Draw(framed).text((6, 5), text, fill=(40, 40, 40))
    return framed


def build_sheet(photos: list[tuple[str, Image.Image]], looks: list[str], tile: int, seed: int) -> Image.Image:
    columns = ["photo", "default", *looks]
    cell_h = tile + LABEL_HEIGHT
    sheet = Image.new("RGB", (tile * len(columns), cell_h * len(photos)), "white")
    for row, (name, photo) in enumerate(photos):
        cells = [_label(prepare(photo, tile, tile), name)]
        for look in ["", *looks]:
            # Paint at 2x the tile, as the Space would at 512-1024, then shrink for the sheet.
            painted = stylize(photo, tile * 2, tile * 2, seed, f"{DEFAULT_PROMPT} {look}".strip())
            shown = painted.resize((tile, tile), Image.Resampling.LANCZOS)
            prompt = f'"... {look}"' if look else "default prompt"
            cells.append(_label(shown, f"painted, {prompt}, seed {seed}"))
        for col, cell in enumerate(cells):
            sheet.paste(cell, (col * tile, row * cell_h))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("photos", nargs="*", type=Path, help="photos to paint; default: generated ones")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/stylizer-sheet.jpg"))
    parser.add_argument(
        "--looks", default="sunset,watercolor", help="extra columns: comma-separated keywords"
    )
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.photos:
        photos = [(path.name, Image.open(path)) for path in args.photos]
    else:
        photos = [(name, make(seed=i + 1)) for i, (name, make) in enumerate(SAMPLES.items())]
    looks = [look.strip() for look in args.looks.split(",") if look.strip()]
    sheet = build_sheet(photos, looks, args.tile, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=82, optimize=True)
    print(f"{args.output}: {sheet.width}x{sheet.height}, {args.output.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
