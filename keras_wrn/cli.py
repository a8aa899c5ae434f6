"""The ``keras-wrn`` command line.

    keras-wrn list [PATTERN]
    keras-wrn summary NAME [--classes N] [--input-shape H,W,C]
    keras-wrn plot NAME OUT.png [--level layer|block] [--classes N] [--input-shape H,W,C] [--dpi DPI]
    keras-wrn train NAME --data DIR --recipe R --epochs E --out RUN_DIR [--resume] [--distribute D]
    keras-wrn finetune NAME --weights RELEASE|FILE --data DIR --out RUN_DIR [--val-fraction F] [--lr LR]
    keras-wrn evaluate NAME --weights RELEASE|FILE --data DIR [--split test] [--confusion OUT.png]
    keras-wrn weights list|show|verify|download|release ...
    keras-wrn decathlon score DOMAIN=ERROR ... [--accuracy]
    keras-wrn decathlon train --data DIR --domains D1,D2 --mode M --out DIR [--source W]
    keras-wrn decathlon compare --source W --out DIR [--domains digits,lfw-faces]
    keras-wrn convert SRC OUT.weights.h5 [--from wrn-pytorch|titu1994-wrn|asmith26-wrn|titu1994-ror] [--backend theano]
"""

import argparse
import json
import os
import shlex
import sys

from keras_wrn import __version__
from keras_wrn.io import atomic_write, unused_path, write_json
from keras_wrn.plotting import GraphvizMissingError, plot_architecture
from keras_wrn.precision import CHOICES as PRECISIONS
from keras_wrn.variants import list_models

# Each command imports what it needs inside its function ("deferred"), so `--help`, `--version`,
# `list` and `weights list|show` do not pay for TensorFlow; the others start it with
# `_start_tensorflow_quietly`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _start_tensorflow_quietly():
    """Import TensorFlow and initialise its devices with the process's native stderr sent to /dev/null.

    TensorFlow 2.19+ writes absl/oneDNN/CUDA lines ("All log messages before
    absl::InitializeLog() ...", "failed call to cuInit") to file descriptor 2
    while it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says
    (tensorflow/tensorflow#100442); after start-up the variable is honoured.
    Python's own errors are unaffected: descriptor 2 is restored before any
    command code runs.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _positive_float(text):
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def _fraction(text):
    value = _non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def _input_shape(text):
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}") from None
    return shape


def _add_model_arguments(parser):
    parser.add_argument("name", help="a registered model name, see `keras-wrn list`")
    parser.add_argument("--classes", type=_positive_int, default=None, help="classifier width (default 10)")
    parser.add_argument("--input-shape", type=_input_shape, default=None, help="H,W,C (default 32,32,3)")


def _build(args):
    from keras_wrn.registry import create_model  # deferred: TensorFlow

    return create_model(args.name, classes=args.classes, input_shape=args.input_shape, compile=False)


def _cmd_list(args):
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no registered model matches pattern={args.pattern!r}")
    print("\n".join(names))


def _cmd_summary(args):
    from keras_wrn.stats import summary  # deferred: TensorFlow

    summary(_build(args))


def _cmd_plot(args):
    path = plot_architecture(_build(args), args.out, dpi=args.dpi, level=args.level)
    print(f"wrote {path}")


def _image_size(text):
    try:
        height, width = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W such as 64,64, got {text!r}") from None
    return height, width


def _cmd_train(args):
    from keras_wrn.training import train, use_cpu_devices  # deferred: TensorFlow
    from keras_wrn.training.loop import TEST_RESULT  # deferred: TensorFlow
    from keras_wrn.training.rundir import selection_accuracy  # deferred: TensorFlow

    if args.cpu_devices:
        use_cpu_devices(args.cpu_devices)
    history = train(args.name, args.data, args.out, recipe=args.recipe, epochs=args.epochs,
                    batch_size=args.batch_size, seed=args.seed, resume=args.resume,
                    dropout=args.dropout, limit_train=args.limit_train, verbose=args.verbose,
                    init_weights=getattr(args, "weights", None),
                    freeze_backbone=getattr(args, "freeze_backbone", False),
                    normalization=args.normalization, image_size=args.image_size, distribute=args.distribute,
                    command=shlex.join(["keras-wrn"] + args.argv), learning_rate=args.lr,
                    weight_decay=args.weight_decay, val_fraction=args.val_fraction, precision=args.precision)
    if history:
        last = history[-1]
        split = "validation" if args.val_fraction else "test"
        averaged = " (moving average of the weights)" if "ema_val_accuracy" in last else ""
        print(f"epoch {last['epoch']}: {split} error {100 * (1 - selection_accuracy(last)):.2f}%{averaged} "
              f"(loss {last['loss']:.4f}) -> {args.out}")
    test_result = os.path.join(args.out, TEST_RESULT)
    if args.val_fraction and os.path.isfile(test_result):
        with open(test_result, encoding="utf-8") as stream:
            test = json.load(stream)
        print(f"test split, measured once with the best weights (epoch {test['best_epoch']}, chosen on the "
              f"validation split): top-1 error {100 * test['top1_error']:.2f}% on {test['images']} images")


def _require_folder_of(option, path):
    """Refuse an output path whose folder does not exist, before any work is done for it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path!r}: the folder {folder!r} does not exist.")


def _cmd_evaluate(args):
    from keras_wrn.training import evaluate  # deferred: TensorFlow

    for option, path in (("--json", args.json), ("--confusion", args.confusion)):
        if path:
            _require_folder_of(option, path)
            if os.path.lexists(path):
                raise ValueError(f"{option} {path!r} exists; choose another path (nothing is overwritten).")
    confusion = args.confusion
    if confusion is None:
        base = os.path.basename(args.weights).removesuffix(".weights.h5")
        confusion = unused_path(os.path.join(os.path.dirname(os.path.abspath(args.weights)),
                                             f"confusion-{base}-{args.split}.png"))
    result = evaluate(args.name, args.weights, args.data, split=args.split, batch_size=args.batch_size,
                      confusion_png=confusion, image_size=args.image_size, limit=args.limit, verbose=None,
                      precision=args.precision, tta=args.tta, overwrite=False)
    tta = f", flip TTA; without it {100 * result['plain_top1_error']:.2f}%" if args.tta == "flip" else ""
    print(f"{args.name} {os.path.basename(args.weights)} on {args.data} [{args.split}, {result['images']} images, "
          f"{result['precision']}]: "
          f"top-1 error {100 * result['top1_error']:.2f}%{tta}")
    print(f"confusion matrix: {result['confusion_png']}")
    if args.json:
        write_json(args.json, result, overwrite=False)
        print(f"metrics: {args.json}")


def _cmd_weights_list(args):
    from keras_wrn import weights  # deferred: h5py and NumPy, not needed for --help

    names = weights.list_weights(args.pattern)
    for name in names:
        entry = weights.weights_info(name)
        test = entry["metrics"][0]
        print(f"{name:32s} {entry['model']:14s} {entry['parameters']:>11,} params  "
              f"{100 * test['top1_error']:.2f}% top-1 error ({test['data']}){'  [default]' if entry.get('default') else ''}")
    if not names:
        print("no released weights" + (f" match {args.pattern!r}" if args.pattern != "*" else ""))


def _cmd_weights_show(args):
    from keras_wrn import weights  # deferred: h5py and NumPy, not needed for --help

    print(json.dumps(weights.weights_info(args.release), indent=2))


def _cmd_weights_verify(args):
    from keras_wrn import weights  # deferred: h5py and NumPy, not needed for --help
    from keras_wrn.registry import verify_weights  # deferred: TensorFlow
    from keras_wrn.release import remeasure  # deferred: TensorFlow

    if args.full and not args.data:
        raise ValueError("--full needs --data: the directory holding the full test split the releases were measured "
                         "on (e.g. CIFAR10_JPEG_DIR).")
    failures = 0
    for name in args.releases or weights.list_weights():
        try:
            report = verify_weights(name)
            rows = remeasure(name, args.data) if args.full else []
        except (ValueError, FileNotFoundError) as error:
            failures += 1
            print(f"FAIL {name}: {error}")
            continue
        print(f"ok   {name}: sha256 {report['sha256'][:16]}..., {report['parameters']:,} parameters")
        for row in rows:
            failures += not row["ok"]
            print(f"{'ok  ' if row['ok'] else 'FAIL'} {name}: {row['what']}: measured {100 * row['measured']:.2f}%, "
                  f"manifest {100 * row['recorded']:.2f}%")
    if failures:
        raise ValueError(f"{failures} release(s) failed verification.")


def _cmd_weights_download(args):
    from keras_wrn import weights  # deferred: h5py and NumPy, not needed for --help

    names = args.releases or weights.list_weights()
    for name in names:
        weights.weights_info(name)  # an unknown name fails before anything is fetched
    for name in names:
        path, _ = weights.resolve_weights(name, base_url=args.url)
        print(f"{name}: {path}", flush=True)


def _cmd_weights_release(args):
    from keras_wrn.release import release  # deferred: TensorFlow

    entry = release(args.run_dir, args.name, args.data, dataset=args.dataset, which=args.which,
                    default=args.default, training_command=args.training_command,
                    training_commit=args.training_commit, wall_time=args.wall_time)
    print(json.dumps(entry, indent=2))


CONVERTERS = ("wrn-pytorch", "titu1994-wrn", "asmith26-wrn", "titu1994-ror")


def _cmd_convert(args):
    import importlib

    out = args.out
    if not out.endswith(".weights.h5"):
        raise ValueError(f"OUT={out!r}: expected a path ending in .weights.h5.")
    sidecar = out.removesuffix(".weights.h5") + ".json"
    for path in (out, sidecar):
        if os.path.lexists(path):
            raise ValueError(f"OUT={out!r}: {path!r} exists; choose another path (nothing is overwritten).")
    convert = importlib.import_module("keras_wrn.convert")
    if args.source_format == "wrn-pytorch":
        model = convert.from_wide_resnet_pytorch(args.src)
    else:
        model = convert.from_legacy_keras(args.src, args.source_format, backend=args.backend,
                                          include_top=not args.no_top)
    config = model.get_config()
    atomic_write(out, model.save_weights, overwrite=False)
    description = dict(source=os.path.abspath(args.src), source_format=args.source_format,
                       model=model.name, parameters=model.count_params(),
                       input_shape=list(model.input_shape[1:]), classes=int(model.output_shape[-1]),
                       outputs="logits" if args.source_format == "wrn-pytorch" else "softmax",
                       include_top=not args.no_top, layers=len(config["layers"]))
    write_json(sidecar, description, overwrite=False)
    print(f"wrote {out} ({model.name}, {model.count_params():,} parameters; {description['outputs']}"
          f"{'' if description['include_top'] else ', backbone only'}) and its .json")


def _cmd_decathlon_score(args):
    from keras_wrn.decathlon import domain_scores, score  # deferred: TensorFlow

    values = {}
    for pair in args.pairs:
        domain, _, value = pair.partition("=")
        try:
            values[domain] = float(value)
        except ValueError:
            raise ValueError(f"{pair!r}: expected DOMAIN=NUMBER such as svhn=3.46.") from None
    errors = {d: 100.0 - v for d, v in values.items()} if args.accuracy else values
    total = score(errors, require_all=not args.subset)
    for domain, points in domain_scores(errors).items():
        print(f"{domain:14s} error {errors[domain]:6.2f}%  {points:7.1f} points")
    print(f"S = {total:.0f}")


def _cmd_decathlon_train(args):
    from keras_wrn.decathlon import train_decathlon  # deferred: TensorFlow

    summary = train_decathlon(args.source, args.data, [d for d in args.domains.split(",") if d], args.mode, args.out,
                              epochs=args.epochs, batch_size=args.batch_size, width_factor=args.width_factor,
                              verbose=args.verbose)
    for domain, row in summary["domains"].items():
        print(f"{domain:14s} {row['mode']:9s} val error {row['val_error']:6.2f}%  "
              f"{row['trainable_parameters']:>10,} trainable  {row['train_seconds']:.0f} s")
    print(f"results: {os.path.join(args.out, 'results.json')}")


def _cmd_decathlon_compare(args):
    from keras_wrn.decathlon import compare_modes  # deferred: TensorFlow

    summary = compare_modes(args.source, args.out, domains=_split(args.domains, "--domains"),
                            modes=_split(args.modes, "--modes"), epochs=args.epochs, batch_size=args.batch_size,
                            image_size=args.image_size, width_factor=args.width_factor, seed=args.seed,
                            verbose=args.verbose)
    for row in summary["rows"]:
        print(f"{row['domain']:10s} {row['mode']:9s} test accuracy {100 * row['test_accuracy']:6.2f}%  "
              f"{row['domain_parameters']:>10,} domain parameters  {row['train_seconds']:.0f} s")
    print(f"table: {os.path.join(args.out, 'results.md')}")


def _split(value, argument):
    items = [item for item in value.split(",") if item]
    if not items:
        raise ValueError(f"{argument} {value!r}: expected a comma-separated list.")
    return items


def _add_training_arguments(parser, default_recipe):
    parser.add_argument("name", help="a registered model name")
    parser.add_argument("--data", required=True,
                        help="CIFAR python batches, train/ and test/ image folders, or one <class>/ folder")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, logs, curves)")
    parser.add_argument("--recipe", default=default_recipe,
                        help=f"wrn, preact, preact-110, ror, adapters, fast, finetune (default {default_recipe})")
    parser.add_argument("--epochs", type=_positive_int, default=None, help="epochs; the recipe's schedule is scaled")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="global batch (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling, augmentation (default 0)")
    parser.add_argument("--dropout", type=_fraction, default=None, help="dropout rate (default: the model's)")
    parser.add_argument("--limit-train", type=_positive_int, default=None, help="use the first N training images")
    parser.add_argument("--normalization", default="meanstd", choices=("meanstd", "zca"),
                        help="per-channel mean/std (default) or ZCA whitening (WRN v1)")
    parser.add_argument("--image-size", type=_image_size, default=None, help="H,W image folders are resized to")
    parser.add_argument("--distribute", default=None, choices=("none", "mirrored", "multi-worker"),
                        help="tf.distribute strategy; multi-worker reads TF_CONFIG")
    parser.add_argument("--cpu-devices", type=_positive_int, default=None,
                        help="split the CPU into N logical devices (for --distribute mirrored without GPUs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="float32, mixed bfloat16 or float16 (float32 variables), or auto: bfloat16 where the "
                        "CPU has AMX/AVX512-BF16 or the GPU supports it (default float32; with --resume the run's)")
    parser.add_argument("--lr", type=_positive_float, default=None,
                        help="base learning rate (default: the recipe's); the schedule keeps its shape")
    parser.add_argument("--weight-decay", type=_non_negative_float, default=None, help="L2 coefficient (default: the recipe's)")
    parser.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                        help="0 silent, 1 Keras' bar, 2 a line per epoch (default: a bar on a terminal, plain "
                        "lines every few seconds in a log)")


def make_parser():
    parser = argparse.ArgumentParser(prog="keras-wrn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"keras-wrn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list registered model names")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'wrn-*'")
    listing.set_defaults(run=_cmd_list, light=True)

    summary = commands.add_parser("summary", help="parameters, MACs and activation memory of a model")
    _add_model_arguments(summary)
    summary.set_defaults(run=_cmd_summary)

    plot = commands.add_parser("plot", help="draw a model's architecture (every layer, or one node per unit)")
    _add_model_arguments(plot)
    plot.add_argument("out", help="output file: .png, .svg, .pdf or .dot")
    plot.add_argument("--level", default="layer", choices=("layer", "block"),
                      help="layer: every layer (keras.utils.plot_model); block: one node per residual unit, "
                      "identical runs collapsed, readable at any depth (default layer)")
    plot.add_argument("--dpi", type=_positive_int, default=72, help="resolution of a PNG (default 72)")
    plot.set_defaults(run=_cmd_plot)

    train = commands.add_parser("train", help="train with a paper recipe; resumable")
    _add_training_arguments(train, "wrn")
    train.add_argument("--val-fraction", type=_fraction, default=None,
                       help="hold out this fraction of the training images for validation (picks best.weights.h5); "
                       "the test split is then measured once at the end (default: validate on the test split, as "
                       "the papers report)")
    train.set_defaults(run=_cmd_train)

    finetune = commands.add_parser("finetune", help="fine-tune trained weights on new data with a new head")
    _add_training_arguments(finetune, "finetune")
    finetune.add_argument("--weights", required=True,
                          help="a released weights name (keras-wrn weights list) or a .weights.h5 of the architecture")
    finetune.add_argument("--val-fraction", type=_fraction, default=0.1,
                          help="fraction of the training images held out (seeded, stratified) to pick the best "
                          "epoch; the test split, if --data has one, is measured once at the end (default 0.1)")
    finetune.add_argument("--freeze-backbone", action="store_true", help="train only the new head")
    finetune.set_defaults(run=_cmd_train)

    evaluate = commands.add_parser("evaluate", help="top-1 error and a confusion-matrix PNG")
    evaluate.add_argument("name", help="a registered model name")
    evaluate.add_argument("--weights", required=True,
                          help="a released weights name, or a .weights.h5 (preprocessing from run.json beside it)")
    evaluate.add_argument("--data", required=True, help="CIFAR python batches or split/<class>/ image folders")
    evaluate.add_argument("--split", default="test", help="the split folder or CIFAR split (default test)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=500, help="images per batch (default 500)")
    evaluate.add_argument("--image-size", type=_image_size, default=None, help="H,W image folders are resized to")
    evaluate.add_argument("--limit", type=_positive_int, default=None, help="evaluate the first N images only")
    evaluate.add_argument("--precision", default=None, choices=PRECISIONS,
                          help="compute precision (default float32); weights of any precision load")
    evaluate.add_argument("--tta", default="none", choices=("none", "flip"),
                          help="test-time augmentation: flip averages each image with its mirror (default none)")
    evaluate.add_argument("--confusion", default=None,
                          help="PNG path, which must not exist (default: confusion-WEIGHTS-SPLIT.png beside a "
                          "weights file, or in the current folder for a released name; -2, -3, ... "
                          "is added to that name rather than replace a file)")
    evaluate.add_argument("--json", default=None, help="also write the metrics as JSON to this new file")
    evaluate.set_defaults(run=_cmd_evaluate)

    convert = commands.add_parser("convert", help="convert the original implementations' weights")
    convert.add_argument("src", help="the original weights file")
    convert.add_argument("out", help="the .weights.h5 to write (and a .json beside it)")
    convert.add_argument("--from", dest="source_format", default="wrn-pytorch", choices=CONVERTERS,
                         help="wrn-pytorch: szagoruyko/wide-residual-networks pytorch checkpoints; the others: "
                         "the seed repositories' Keras 1/2 .h5 files (see keras_wrn.convert.legacy_keras)")
    convert.add_argument("--backend", choices=("theano", "tensorflow"), default=None,
                         help="legacy files: the backend that trained them, where the file does not say")
    convert.add_argument("--no-top", action="store_true", help="legacy files: convert the backbone only")
    convert.set_defaults(run=_cmd_convert)

    decathlon = commands.add_parser("decathlon", help="the Visual Decathlon score")
    decathlon_commands = decathlon.add_subparsers(dest="decathlon_command", required=True)
    scoring = decathlon_commands.add_parser("score", help="S from per-domain errors (published baseline)")
    scoring.add_argument("pairs", nargs="+", help="DOMAIN=ERROR%% (or accuracy with --accuracy)")
    scoring.add_argument("--accuracy", action="store_true", help="the numbers are accuracies, not errors")
    scoring.add_argument("--subset", action="store_true", help="score only the given domains")
    scoring.set_defaults(run=_cmd_decathlon_score)
    protocol = decathlon_commands.add_parser("train", help="train domains from a source ResNet-26 (reference protocol)")
    protocol.add_argument("--source", default=None, help="the source resnet26 .weights.h5 (all modes but scratch)")
    protocol.add_argument("--data", required=True, help="the Decathlon root (annotations/, data/, mean/std pickle)")
    protocol.add_argument("--domains", required=True, help="comma-separated, e.g. aircraft,svhn")
    protocol.add_argument("--mode", required=True, choices=("scratch", "finetune", "bn", "series", "parallel"),
                          help="what trains per domain: everything from scratch or the source, BN only, or adapters")
    protocol.add_argument("--out", required=True, help="directory for the packs and results.json")
    protocol.add_argument("--epochs", type=_positive_int, default=None, help="default 120 (the adapters recipe), scaled")
    protocol.add_argument("--batch-size", type=_positive_int, default=128, help="default 128")
    protocol.add_argument("--width-factor", type=_positive_float, default=1.0, help="the source ResNet-26's (default 1.0)")
    protocol.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras progress (default 2)")
    protocol.set_defaults(run=_cmd_decathlon_train)
    compare = decathlon_commands.add_parser(
        "compare", help="every training mode on bundled small real domains (digits, lfw-faces): the adapter table")
    compare.add_argument("--source", required=True,
                         help="released name (resnet26-w0.5.cifar10-jpeg-e8) or .weights.h5 of a plain ResNet-26")
    compare.add_argument("--out", required=True, help="directory for results.json and results.md")
    compare.add_argument("--domains", default="digits,lfw-faces", help="comma-separated (default digits,lfw-faces)")
    compare.add_argument("--modes", default="scratch,finetune,bn,series,parallel", help="comma-separated subset")
    compare.add_argument("--epochs", type=_positive_int, default=30, help="the adapters recipe scaled to this many epochs")
    compare.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    compare.add_argument("--image-size", type=_positive_int, default=32, help="square input side (the source's)")
    compare.add_argument("--width-factor", type=_positive_float, default=None, help="only with a .weights.h5 path")
    compare.add_argument("--seed", type=int, default=0, help="default 0")
    compare.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                         help="Keras progress per fit (default 0; a line per domain and mode is always printed)")
    compare.set_defaults(run=_cmd_decathlon_compare)

    released = commands.add_parser("weights", help="released weights: list, show, verify, download, release",
                                   description="Released weights: list, show, verify, download into the cache, "
                                   "release a finished run.")
    weights_commands = released.add_subparsers(dest="weights_command", required=True, metavar="COMMAND")
    listing = weights_commands.add_parser("list", help="released names with their model, size and error")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'wrn-*'")
    listing.set_defaults(run=_cmd_weights_list, light=True)
    show = weights_commands.add_parser("show", help="a release's whole manifest entry (JSON)")
    show.add_argument("release", help="a released weights name")
    show.set_defaults(run=_cmd_weights_show, light=True)
    verify = weights_commands.add_parser("verify", help="hash, size, loading and parameter count of releases")
    verify.add_argument("releases", nargs="*", help="released names (default: all)")
    verify.add_argument("--full", action="store_true",
                        help="also re-measure each release's full test-split error(s) on --data and compare")
    verify.add_argument("--data", default=None, help="with --full: the dataset directory (e.g. CIFAR10_JPEG_DIR)")
    verify.set_defaults(run=_cmd_weights_verify)
    download = weights_commands.add_parser(
        "download", help="fetch releases into the cache ($KERAS_HOME/models/keras_wrn), hash-checked")
    download.add_argument("releases", nargs="*", help="released names (default: all)")
    download.add_argument("--url", default=None,
                          help="base URL the file names are appended to (default $KERAS_WRN_WEIGHTS_URL, else "
                          "each release's origin)")
    download.set_defaults(run=_cmd_weights_download)
    publish = weights_commands.add_parser("release", help="release a finished training run as named weights")
    publish.add_argument("run_dir", help="the run directory of a finished `keras-wrn train`")
    publish.add_argument("--name", required=True, help="the new weights name, e.g. wrn-16-1.cifar10-jpeg-e10")
    publish.add_argument("--data", required=True, help="the data whose test split is evaluated")
    publish.add_argument("--dataset", default="cifar10-jpeg", help="the dataset's name (default cifar10-jpeg)")
    publish.add_argument("--which", default="last", choices=("last", "best"), help="which weights of the run")
    publish.add_argument("--default", action="store_true", help="make it the model's default weights")
    publish.add_argument("--training-command", default=None, help="for runs that predate run.json's record")
    publish.add_argument("--training-commit", default=None, help="for runs that predate run.json's record")
    publish.add_argument("--wall-time", default=None, help="for runs that predate per-epoch timing")
    publish.set_defaults(run=_cmd_weights_release)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    args.argv = argv
    if not getattr(args, "light", False):
        _start_tensorflow_quietly()
    try:
        args.run(args)
    except (ValueError, OSError, GraphvizMissingError) as error:  # OSError: disk full, permissions, missing files
        print(f"keras-wrn {args.command}: error: {error}", file=sys.stderr)
        return 1 if isinstance(error, GraphvizMissingError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
