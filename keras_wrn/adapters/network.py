"""`MultiDomainNetwork`: one network, many visual domains (Rebuffi et al., NIPS 2017 / CVPR 2018).

The convolutions live in one shared `LayerBank`, frozen; each domain owns a
bank of its BatchNorms (scale, offset and moving statistics), its adapters and
its classifier.  Each domain's compiled Functional `keras.Model` is built by the
family's own backbone (`keras_wrn.models.resnet26`, `keras_wrn.models.wrn_ram`)
from the *same* shared Layer objects, so shared weights exist once in memory and
training one domain cannot touch another's parameters.  Layer names
(``stage2_block1_conv1``, ``..._bn``, ``..._adapter``, ``..._adapter_bn``,
``final_bn``, ``predictions``) are the same in every domain's model.
"""

from keras_wrn.adapters import budget as _budget
from keras_wrn.adapters import merge as _merge
from keras_wrn.adapters import packs as _packs
from keras_wrn.blocks import AdapterUnits, LayerBank
from keras_wrn.models.base import build_model, resolve_config
from keras_wrn.models.resnet26 import RESNET26
from keras_wrn.models.wrn_ram import WRN_RAM, create_wrn_ram
from keras_wrn.precision import resolve_precision

__all__ = ["MultiDomainNetwork", "wrn_ram"]


class MultiDomainNetwork:
    """A ResNet-26 (or WRN-RAM) whose convolutions are shared and frozen, with per-domain adapters, BNs and heads.

    >>> net = MultiDomainNetwork(adapter="parallel", domains={"cifar10": 10, "digits": 10})
    >>> net["digits"].fit(...)            # trains digits' adapters, BNs and head only
    >>> net.add_domain("letters", 26)

    Args:
        adapter: ``"parallel"``, ``"series"``, or None (only BNs and heads are
            per domain: the ``bn`` mode).
        domains: ``{name: classes}`` created now, in order.
        input_shape: channels-last, default ``(64, 64, 3)`` (the Decathlon's 64x64 crops).
        positions: ``"all"`` conv units get adapters, or shell patterns over unit
            names such as ``"stage3_*"``.
        width_factor: scales every width (the reference code's ``factor``).
        compile: compile each domain's model (the adapters recipe's SGD, logits).
        architecture: ``"resnet26"`` (default) or ``"wrn"`` (then ``depth`` and
            ``width`` give the WRN-RAM; see `wrn_ram`).
        train_shared: let the shared convolutions train too (default False).
        precision: of every domain's model, as in the builders
            (`keras_wrn.precision`); default None: Keras' global policy.
    """

    def __init__(self, adapter="parallel", domains=None, input_shape=(64, 64, 3), positions="all", width_factor=1.0,
                 compile=True, *, architecture="resnet26", depth=None, width=None, train_shared=False, precision=None):
        if architecture == "resnet26":
            self.family = RESNET26
            self._arguments = dict(width_factor=width_factor)
        elif architecture == "wrn":
            self.family = WRN_RAM
            self._arguments = dict(depth=depth, width=width, train_shared=bool(train_shared))
        else:
            raise ValueError(f"MultiDomainNetwork: architecture={architecture!r} is not allowed; expected "
                             "'resnet26' or 'wrn'.")
        self.adapter, self.positions, self.compile = adapter, positions, compile
        self.input_shape = tuple(input_shape)
        self.width_factor = width_factor
        # The family checks every argument (adapter, positions, input_shape, depth...) before anything is built.
        self.precision = resolve_precision(precision, "MultiDomainNetwork: precision")
        self.spec = resolve_config(self.family, self._build_arguments(1, name=None), {})["spec"]
        self.shared = LayerBank(trainable=bool(train_shared))
        self._banks, self._models, self.classes = {}, {}, {}
        self.pack_meta = {}
        for domain, classes in (domains or {}).items():
            self.add_domain(domain, classes)

    def _build_arguments(self, classes, name):
        return dict(input_shape=self.input_shape, classes=classes, adapter=self.adapter, positions=self.positions,
                    include_top=True, weights=None, input_tensor=None, pooling=None, classifier_activation=None,
                    weight_decay=None, name=name, compile=self.compile, precision=self.precision, **self._arguments)

    def add_domain(self, domain, classes):
        """Create ``domain``'s adapters, BNs and head; returns its (compiled) model.

        All or nothing: the domain is registered only once its model is built, so
        a refused name or ``classes`` (``ValueError``) leaves the network as it was.
        """
        if not isinstance(domain, str) or not domain:
            raise ValueError(f"add_domain: domain={domain!r} must be a non-empty string.")
        if domain in self._models:
            raise ValueError(f"add_domain: domain {domain!r} exists already (domains: {self.domains}).")
        bank = LayerBank()
        units = AdapterUnits(self.shared, bank, self.adapter, self.positions)
        prefix = "resnet26" if self.spec["architecture"] == "resnet26" else "wrn_{depth}_{width}_ram".format(**self.spec)
        model = build_model(self.family, units=units, **self._build_arguments(classes, f"{prefix}_{domain}"))
        self._banks[domain], self._models[domain], self.classes[domain] = bank, model, classes
        return model

    @property
    def domains(self):
        return list(self._models)

    def __getitem__(self, domain):
        if domain not in self._models:
            raise KeyError(f"unknown domain {domain!r}; domains: {self.domains}.")
        return self._models[domain]

    def __contains__(self, domain):
        return domain in self._models

    def domain_bank(self, domain):
        """The `LayerBank` of ``domain``'s own layers (BNs, adapters, head)."""
        self[domain]
        return self._banks[domain]

    def remove_domain(self, domain):
        """Forget ``domain`` (its model, layers, classes and pack meta); the shared layers stay."""
        self[domain]
        for record in (self._banks, self._models, self.classes, self.pack_meta):
            record.pop(domain, None)

    def shared_weights(self):
        return self.shared.weights

    def domain_weights(self, domain):
        return self.domain_bank(domain).weights

    def _build_shared(self):
        """Create the shared layers if no domain has yet (they are made while a domain's graph is built)."""
        if not self.shared.layers:
            units = AdapterUnits(self.shared, LayerBank(), self.adapter, self.positions)
            build_model(self.family, units=units, **dict(self._build_arguments(1, None), compile=False))

    def load_shared(self, source):
        """Copy the convolutions of a plain network of the same family (the source) into the shared bank.

        Works before any domain exists, e.g. to load adapter packs into a new network.
        """
        self._build_shared()
        for name, layer in self.shared.layers.items():
            layer.set_weights(source.get_layer(name).get_weights())

    def merge(self, domain):
        """A plain, adapter-free network computing ``self[domain]``'s function at inference (`merge.merge_domain`)."""
        return _merge.merge_domain(self, domain)

    def fingerprint(self):
        """sha256 of the shared backbone (`packs.backbone_fingerprint`)."""
        self._build_shared()
        return _packs.backbone_fingerprint(self)

    def save_pack(self, domain, path, class_names=None, preprocessing=None):
        """Write ``domain``'s own parameters to the adapter pack ``path`` (`packs.save_pack`)."""
        return _packs.save_pack(self, domain, path, class_names, preprocessing)

    def load_pack(self, path, domain=None):
        """Add the domain stored in the pack ``path`` (`packs.load_pack`); returns its model.

        All or nothing: a pack refused for any reason (``ValueError`` naming the
        file and the field or array) leaves ``domains`` as they were.
        """
        return _packs.load_pack(self, path, domain)

    def budget(self):
        """Shared vs per-domain parameters (`budget.parameter_budget`)."""
        return _budget.parameter_budget(self)


def wrn_ram(input_shape=(32, 32, 3), nb_classes=None, N=None, k=None, *, classes=None, depth=None, width=None,
            adapter="series", domains=None, positions="all", train_shared=False, compile=True):
    """WRN-d-k with residual adapter modules (seed 000's WRN-RAM; default WRN-28-4-RAM).

    ``wrn_ram((32, 32, 3), nb_classes=10, N=4, k=4)`` returns one compiled model
    (`keras_wrn.models.create_wrn_ram`: convolutions frozen unless
    ``train_shared``); ``domains={name: classes}`` returns a `MultiDomainNetwork`
    sharing the convolutions.  The seed's names are accepted: ``N`` blocks per
    group (depth = 6N + 4), ``k`` (width), ``nb_classes``.
    """
    seed_kwargs = {alias: value for alias, value in (("nb_classes", nb_classes), ("N", N), ("k", k))
                   if value is not None}
    if domains is None:
        return create_wrn_ram(input_shape, classes, depth=depth, width=width, adapter=adapter, positions=positions,
                              train_shared=train_shared, compile=compile, **seed_kwargs)
    # Resolve the seed names and defaults as the single-model builder does.
    config = resolve_config(WRN_RAM, dict(
        input_shape=input_shape, classes=classes, depth=depth, width=width, adapter=adapter, positions=positions,
        train_shared=train_shared, include_top=True, weights=None, input_tensor=None, pooling=None,
        classifier_activation=None, weight_decay=None, name=None, compile=compile), seed_kwargs)
    return MultiDomainNetwork(adapter=adapter, domains=domains, input_shape=config["input_shape"], positions=positions,
                              compile=compile, architecture="wrn", depth=config["depth"], width=config["width"],
                              train_shared=train_shared)
