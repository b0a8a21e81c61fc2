"""Does the encoder gate's patch size decide the blind verdicts? The `large` ladder's encoders read at larger crops.

    SRLIB_DATA=<standard sets> python benchmarks/encoder_measure_size.py [--sizes 24 40 56]

Design (fixed before the first run): the gate (:func:`srlib.methods.blind_sr.encoder_accuracy`, fixed before the
``large`` runs were read) embeds 24-pixel LR patches, ``large``'s training patch; at test time DASR and CDSR embed the
whole LR image, so the gate might understate what the SR network receives. This reads every blind model of the
committed ``large`` ladder (DASR, CDSR, the encoder swap; 3 seeds; rungs b100, b400, b1600; loaded, not trained)
with the gate's own measure on the gate's own held-out images (:func:`srlib.methods.blind_sr.heldout_images`: Set5
+ Set14), changing only the LR crop side: 24 (the gate's), 40 and 56 (56 is the largest square every held-out image
holds at x4: Set5's "woman" is 228 pixels wide, so it is nearly the whole image for the smallest ones). Rule: where
an encoder passes the gate (:func:`srlib.methods.blind_sr.encoder_gate`) at a larger crop but not at 24 pixels, the
gate's size is stricter than test time, and that goes beside the verdicts (which stay as fixed); where none does,
the inconclusive blind verdicts do not hinge on the crop's size.

The runs load from ``large``'s runs folder (``srlib train --profile large --paper blind`` made them); any missing
there would be trained first (~2.5 h of 2 cores). Writes ``benchmarks/results/encoder_measure_size.csv`` (one row
per rung, model and crop: the mean over seeds and each seed's accuracy) and prints it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from srlib import data, profiles
from srlib.methods import blind_sr
from srlib.recipes import selected
from srlib.runs import train_all

OUT = Path(__file__).parent / "results" / "encoder_measure_size.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[24, 40, 56], help="LR crop sides to read at")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if data.data_root() is None:
        raise SystemExit("encoder_measure_size: reads the `large` runs trained on T91 + BSD200: set SRLIB_DATA")
    large = profiles.PROFILES["large"]
    results = train_all(selected(large, ["blind"]), profiles.runs_dir(large), progress=False)
    hr = blind_sr.heldout_images(large)
    rows = []
    for budget in large.ladder:
        rung = f"b{budget}"
        models = blind_sr.table_models(blind_sr.by_name(results.where(rung=rung)), "cdsr2")
        by_size = {size: blind_sr.encoder_accuracies(models, hr, size) for size in args.sizes}  # the gate's reading
        for name in ("DASR", "CDSR", blind_sr.SWAP):
            for size, found in by_size.items():
                acc, chance, per_seed = found[name]
                rows.append({"rung": f"large/{rung}", "model": name, "lr_crop": size, "accuracy": round(acc, 4),
                             "chance": round(chance, 4), "gate": round(chance + blind_sr.GATE * (1 - chance), 4),
                             "passes": blind_sr.encoder_gate(acc, chance),
                             "per_seed": " ".join(f"{a.accuracy:.3f}" for a in per_seed), "n_patches": per_seed[0].n})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.pivot_table(index=["rung", "model"], columns="lr_crop", values="accuracy", sort=False).to_string())


if __name__ == "__main__":
    main()
