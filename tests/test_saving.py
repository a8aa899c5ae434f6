"""`.keras` files of every family reload in a NEW process after `import keras_wrn` (either import order)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY, build_tiny

QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

LOAD = """
import sys
import numpy as np
{imports}
out, kinds = sys.argv[1], sys.argv[2:]
for kind in kinds:
    model = keras.saving.load_model(f"{{out}}/{{kind}}.keras", safe_mode=True)
    x, y = np.load(f"{{out}}/{{kind}}.x.npy"), np.load(f"{{out}}/{{kind}}.y.npy")
    assert np.array_equal(model(x, training=False), y), kind
    assert type(model.optimizer).__name__ == "CoupledWeightDecaySGD", kind
    if kind == "fast":  # compiled as `keras-wrn train --recipe fast` compiles
        assert model.optimizer.get_config()["learning_rate"]["class_name"] == "OneCycle"
        assert type(model.loss).__name__ == "SmoothedSparseCategoricalCrossentropy"
print("LOADED", len(kinds))
"""


def run(code, *args):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         timeout=600, env=QUIET, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every family, a domain model of a MultiDomainNetwork, a release's model (preprocessing inside) and a
    model compiled with the `fast` recipe's schedule and loss, trained one step (three of them), saved compiled."""
    import keras_wrn
    from keras_wrn.losses import recipe_loss
    from keras_wrn.optimizers import CoupledWeightDecaySGD
    from keras_wrn.recipes import get_recipe, learning_rate_schedule

    out = tmp_path_factory.mktemp("saved")
    rng = np.random.default_rng(0)
    models = {kind: build_tiny(kind, classes=5, dropout=0.2) for kind in TINY}
    models["resnet26"] = keras_wrn.resnet26(5, (16, 16, 3), adapter="series", width_factor=0.25)
    models["wrn_ram"] = keras_wrn.create_wrn_ram((16, 16, 3), 5, depth=10, width=1, adapter="parallel")
    network = keras_wrn.MultiDomainNetwork(adapter="parallel", domains={"a": 3, "b": 5}, input_shape=(16, 16, 3),
                                           width_factor=0.25)
    models["domain"] = network["b"]
    models["release"] = keras_wrn.create_model("wrn-16-1.cifar10-jpeg-e10")  # with its Normalization layer
    fast = get_recipe("fast")
    models["fast"] = build_tiny("wrn", classes=5, compile=False)
    models["fast"].compile(optimizer=CoupledWeightDecaySGD(learning_rate=learning_rate_schedule(fast, 10, 2),
                                                           nesterov=True, l2=fast.weight_decay),
                           loss=recipe_loss(fast.label_smoothing, from_logits=False))
    for kind, model in models.items():
        x = rng.normal(size=(4,) + tuple(model.input_shape[1:])).astype("float32")
        if kind == "release":
            x = rng.integers(0, 256, size=x.shape).astype("float32")  # raw pixels
        if kind in ("wrn", "domain", "fast"):  # moving statistics and the optimizer's state too
            model.fit(x, np.arange(4) % 3, epochs=1, verbose=0)
        model.save(out / f"{kind}.keras")
        np.save(out / f"{kind}.x.npy", x)
        np.save(out / f"{kind}.y.npy", model(x, training=False))
    return out, list(models)


def test_keras_files_reload_in_a_fresh_process(saved):
    out, kinds = saved
    assert len(kinds) == 10
    assert f"LOADED {len(kinds)}" in run(LOAD.format(imports="import keras_wrn\nimport keras"), out, *kinds)


def test_keras_imported_first_works_too(saved):
    """Keras loaded before keras_wrn takes the other registration path (one file is enough for it)."""
    out, _ = saved
    assert "LOADED 1" in run(LOAD.format(imports="import keras\nimport keras_wrn"), out, "domain")


def test_every_module_with_serializable_classes_is_registered_on_import():
    """A module that registers Keras classes must be among those `import keras_wrn` imports once Keras is
    loaded, or files that use its classes fail to load in a new process (the `fast` recipe's did)."""
    import keras_wrn

    package = pathlib.Path(keras_wrn.__file__).parent
    sources = (path for path in package.rglob("*.py") if path != package / "__init__.py")
    registering = {".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
                   for path in sources if "register_keras_serializable" in path.read_text(encoding="utf-8")}
    assert registering == set(keras_wrn._SERIALIZABLE_MODULES)


def test_import_keras_wrn_does_not_import_keras():
    code = "import sys, keras_wrn; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    assert run(code).split() == ["False", "False"]


def test_an_atomic_write_without_overwrite_leaves_an_existing_file_alone(tmp_path):
    from keras_wrn.io import atomic_write, write_json

    target = tmp_path / "metrics.json"
    target.write_text("the user's")
    with pytest.raises(FileExistsError, match="metrics.json: the file exists; nothing is overwritten"):
        write_json(target, {"x": 1}, overwrite=False)
    assert target.read_text() == "the user's" and os.listdir(tmp_path) == ["metrics.json"]  # no temporary left
    atomic_write(tmp_path / "new.png", lambda temporary: open(temporary, "wb").write(b"png"), overwrite=False)
    assert (tmp_path / "new.png").read_bytes() == b"png" and sorted(os.listdir(tmp_path)) == ["metrics.json", "new.png"]


def test_an_atomic_write_without_overwrite_works_without_hard_links(tmp_path, monkeypatch):
    import errno
    import json

    from keras_wrn.io import write_json

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    write_json(tmp_path / "new.json", {"x": 1}, overwrite=False)
    assert json.loads((tmp_path / "new.json").read_text()) == {"x": 1}
    with pytest.raises(FileExistsError, match="new.json: the file exists; nothing is overwritten"):
        write_json(tmp_path / "new.json", {"x": 2}, overwrite=False)
    assert json.loads((tmp_path / "new.json").read_text()) == {"x": 1} and os.listdir(tmp_path) == ["new.json"]


def test_unused_path_numbers_rather_than_reuse_a_name(tmp_path):
    from keras_wrn.io import unused_path

    assert unused_path(tmp_path / "cm.png") == str(tmp_path / "cm.png")
    (tmp_path / "cm.png").write_bytes(b"")
    os.symlink(tmp_path / "nowhere", tmp_path / "cm-2.png")  # a dangling link is a name in use too
    assert unused_path(tmp_path / "cm.png") == str(tmp_path / "cm-3.png")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_get_the_users_umask(tmp_path, umask):
    from keras_wrn.io import atomic_write, write_json

    previous = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        atomic_write(tmp_path / "b.weights.h5", lambda temporary: open(temporary, "wb").close())
    finally:
        os.umask(previous)
    for name in ("a.json", "b.weights.h5"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.weights.h5"]
