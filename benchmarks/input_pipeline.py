"""Input-pipeline throughput with the papers' augmentation on real cifar10-jpeg images.

    python benchmarks/input_pipeline.py [--data DIR] [--repeats 5] [--out benchmarks/input_pipeline.md]

DIR holds train/<class>/*.jpg (the extracted ../shared/data/cifar10-jpeg.tar.gz;
extracted to a temporary directory when DIR is not given).  Measures
`keras_wrn.data.make_dataset` (normalise + pad/crop/flip, shuffled, batch 128)
as images per second over full passes of the 50,000 training images after one
warm-up pass; reports the median and the spread of the passes.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHIVE = os.path.join(HERE, "..", "..", "shared", "data", "cifar10-jpeg.tar.gz")


def images_per_second(dataset, count):
    start = time.perf_counter()
    seen = 0
    for images, _ in dataset:
        seen += int(images.shape[0])
    assert seen == count
    return count / (time.perf_counter() - start)


def measure_pipeline(data, repeats, kinds=("wrn", "preact", "none")):
    """``{row name: [images/s per pass]}`` on the extracted cifar10-jpeg in ``data`` (train/ split)."""
    from keras_wrn.data import load_image_folder, make_dataset

    start = time.perf_counter()
    images, labels, _ = load_image_folder(os.path.join(data, "train"))
    rows = {"JPEG decode into memory (image_dataset_from_directory), once": [len(images) / (time.perf_counter() - start)]}
    mean = images.reshape(-1, 3).mean(axis=0).tolist()
    std = images.reshape(-1, 3).std(axis=0).tolist()
    for kind in kinds:
        dataset = make_dataset(images, labels, 128, mean, std, kind, shuffle=True, seed=0)
        images_per_second(dataset, len(images))  # warm-up pass
        rows[f"make_dataset augmentation={kind!r}, shuffled, batch 128"] = [
            images_per_second(dataset, len(images)) for _ in range(repeats)]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "input_pipeline.md"))
    args = parser.parse_args(argv)

    from keras_wrn.data import extract_archive

    data = args.data
    if data is None:
        data = tempfile.mkdtemp(prefix="cifar10-jpeg-")
        extract_archive(ARCHIVE, data)
        data = os.path.join(data, next(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d))))
    rows = list(measure_pipeline(data, args.repeats).items())

    lines = [
        "# Input pipeline throughput (cifar10-jpeg, 50,000 training images)",
        "",
        f"Measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; command: `{' '.join([os.path.relpath(sys.argv[0])] + (argv or sys.argv[1:]))}`.",
        "",
        "| pipeline | images/s (median) | min - max | passes |",
        "|---|---|---|---|",
    ]
    for name, rates in rows:
        lines.append(f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f} - {max(rates):,.0f} | {len(rates)} |")
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.out, "w", encoding="utf-8") as stream:
        stream.write(report)


if __name__ == "__main__":
    main()
