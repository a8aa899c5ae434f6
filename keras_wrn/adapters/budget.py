"""What a multi-domain network costs: shared vs per-domain parameters (the Decathlon's "params" column)."""

from keras_wrn.stats import count_parameters

__all__ = ["parameter_budget"]


def parameter_budget(network):
    """Shared vs per-domain parameters and bytes, and the multiplier against separate networks.

    ``multiplier`` is (shared + all domains) / one plain network: the "params"
    column of the Decathlon table (about 2x for 10 domains with adapters, 10x
    for ten separate networks).
    """
    shared = count_parameters(network.shared_weights())
    per_domain = {d: count_parameters(network.domain_weights(d)) for d in network.domains}
    plain = shared + (sum(per_domain.values()) / len(per_domain) if per_domain else 0)
    adapters = {d: count_parameters([w for name, layer in network.domain_bank(d).layers.items() if "adapter" in name
                                     for w in layer.weights])
                for d in network.domains}
    total = shared + sum(per_domain.values())
    return dict(shared=shared, per_domain=per_domain, adapters=adapters, total=total, bytes=4 * total,
                separate_networks=len(per_domain) * plain,
                multiplier=total / plain if plain else None,
                domain_fraction={d: n / (shared + n) for d, n in per_domain.items()})
