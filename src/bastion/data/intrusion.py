"""A built-in synthetic network-intrusion dataset: labelled flow records.

Each row is one network flow as a flow exporter (NetFlow/IPFIX, Zeek's ``conn.log``,
CICFlowMeter) would summarise it, in raw units:

=====================  ===========  ==========================================
feature                type         meaning
=====================  ===========  ==========================================
``duration``           float, s     first to last packet
``src_bytes``          integer      bytes client -> server
``dst_bytes``          integer      bytes server -> client
``src_packets``        integer      packets client -> server
``dst_packets``        integer      packets server -> client
``src_port``           integer      client port (chosen by the client)
``dst_port``           integer      service port (**immutable**: the service attacked)
``proto_tcp/udp/icmp`` one-hot      transport protocol (**immutable**)
``syn/fin/rst/psh/ack  integer      TCP flag counts
_count``
``mean_iat_ms``        float, ms    mean packet inter-arrival time
``state_*``            one-hot      how the flow ended: ``established``,
                                    ``rejected``, ``reset``, ``timeout``
=====================  ===========  ==========================================

Classes: ``benign`` (0) and ``attack`` (1). Benign traffic mixes web sessions (some
rejected or reset), DNS and NTP lookups, SSH sessions, large uploads and pings;
attacks are port scans, SYN floods, brute-force logins, exfiltration over HTTPS,
UDP amplification and ICMP floods. Profiles overlap on purpose (failed benign
connections look like scans, uploads like exfiltration, short SSH sessions like brute
force) and 2% of labels are flipped, so a good model reaches about 95%, not 100%.

:func:`intrusion_input_spec` declares what an attacker controls: the destination
port and protocol are fixed by the service under attack (OWASP ML01 scenario #2),
counts and ports are integers, and the protocol and end state are one-hot groups.
Relational facts (``syn_count <= src_packets``) are beyond an input spec and are not
enforced.

Examples
--------
>>> ds = load_intrusion_dataset(seed=0)
>>> ds.row_shape, list(ds.classes), len(ds.x_train) + len(ds.x_test)
((20,), ['benign', 'attack'], 4000)
>>> spec = intrusion_input_spec()
>>> spec.immutable
['dst_port', 'proto_tcp', 'proto_udp', 'proto_icmp']
>>> spec.check(ds.x_test)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bastion.data.dataset import Dataset
from bastion.data.loaders import stratified_split
from bastion.targets.spec import InputSpec

__all__ = ["INTRUSION_FEATURES", "intrusion_input_spec", "load_intrusion_dataset"]

INTRUSION_FEATURES = [
    "duration",
    "src_bytes",
    "dst_bytes",
    "src_packets",
    "dst_packets",
    "src_port",
    "dst_port",
    "proto_tcp",
    "proto_udp",
    "proto_icmp",
    "syn_count",
    "fin_count",
    "rst_count",
    "psh_count",
    "ack_count",
    "mean_iat_ms",
    "state_established",
    "state_rejected",
    "state_reset",
    "state_timeout",
]
_F = {name: i for i, name in enumerate(INTRUSION_FEATURES)}
_UPPER = {
    "duration": 3600.0,
    "src_bytes": 1e7,
    "dst_bytes": 1e7,
    "src_packets": 1e5,
    "dst_packets": 1e5,
    "src_port": 65535.0,
    "dst_port": 65535.0,
    "syn_count": 1e5,
    "fin_count": 100.0,
    "rst_count": 100.0,
    "psh_count": 1e5,
    "ack_count": 1e5,
    "mean_iat_ms": 60000.0,
}
_INTEGER = [
    "src_bytes",
    "dst_bytes",
    "src_packets",
    "dst_packets",
    "src_port",
    "dst_port",
    "syn_count",
    "fin_count",
    "rst_count",
    "psh_count",
    "ack_count",
]
_PROTO = ["proto_tcp", "proto_udp", "proto_icmp"]
_STATE = ["state_established", "state_rejected", "state_reset", "state_timeout"]
_N_ROWS = 4000
_ATTACK_SHARE = 0.4
_LABEL_NOISE = 0.02


def intrusion_input_spec() -> InputSpec:
    """Bounds, immutable, integer and one-hot declarations of the intrusion features."""
    upper = [_UPPER.get(name, 1.0) for name in INTRUSION_FEATURES]
    return InputSpec(
        shape=(len(INTRUSION_FEATURES),),
        lower=0.0,
        upper=upper,
        feature_names=list(INTRUSION_FEATURES),
        immutable=["dst_port", *_PROTO],
        integer=list(_INTEGER),
        one_hot_groups=[list(_PROTO), list(_STATE)],
    )


class _Flows:
    """Vectorised builder for ``n`` flows of one profile."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.x = np.zeros((n, len(INTRUSION_FEATURES)))

    def set(self, name: str, values: np.ndarray | float) -> None:
        self.x[:, _F[name]] = values

    def lognormal(self, median: float, sigma: float) -> np.ndarray:
        return np.asarray(median * np.exp(sigma * self.rng.standard_normal(self.n)))

    def choice(self, options: list[float], p: list[float] | None = None) -> np.ndarray:
        return np.asarray(self.rng.choice(options, size=self.n, p=p))

    def one_hot(self, group: list[str], p: list[float]) -> None:
        pick = self.rng.choice(len(group), size=self.n, p=p)
        for i, name in enumerate(group):
            self.set(name, (pick == i).astype(float))

    def tcp(self, dst_port: np.ndarray | float, *, state_p: list[float]) -> None:
        self.set("dst_port", dst_port)
        self.one_hot(_PROTO, [1.0, 0.0, 0.0])
        self.one_hot(_STATE, state_p)

    def finish(self, *, syn: np.ndarray | float = 1.0, psh_share: float = 0.3) -> np.ndarray:
        """Derive ports, flags and inter-arrival times; return the rows."""
        x, rng = self.x, self.rng
        pkts = x[:, _F["src_packets"]] + x[:, _F["dst_packets"]]
        x[:, _F["src_port"]] = rng.integers(1024, 65536, self.n)
        tcp = x[:, _F["proto_tcp"]] == 1
        ended = (x[:, _F["state_established"]] + x[:, _F["state_reset"]]) > 0
        x[:, _F["syn_count"]] = np.where(tcp, syn, 0)
        x[:, _F["ack_count"]] = np.where(tcp & ended, np.maximum(pkts - 1, 0), 0)
        x[:, _F["psh_count"]] = np.where(tcp, rng.binomial(pkts.astype(int), psh_share), 0)
        x[:, _F["fin_count"]] = np.where(tcp & (x[:, _F["state_established"]] == 1), 2, 0)
        x[:, _F["rst_count"]] = np.where(
            tcp & ((x[:, _F["state_reset"]] + x[:, _F["state_rejected"]]) > 0), 1, 0
        )
        iat = x[:, _F["duration"]] * 1000.0 / np.maximum(pkts - 1, 1)
        x[:, _F["mean_iat_ms"]] = iat * np.exp(0.3 * rng.standard_normal(self.n))
        return x


def _sessions(f: _Flows, up: tuple[float, float], down: tuple[float, float], size: float) -> None:
    """Bytes from log-normal medians/sigmas; packets from bytes at ``size`` bytes each."""
    src = f.lognormal(*up)
    dst = f.lognormal(*down)
    f.set("src_bytes", src)
    f.set("dst_bytes", dst)
    f.set("src_packets", np.maximum(1, src / (size * f.lognormal(1.0, 0.3))))
    f.set("dst_packets", np.maximum(0, dst / (size * 2 * f.lognormal(1.0, 0.3))))


def _web(f: _Flows) -> np.ndarray:
    f.tcp(f.choice([443.0, 80.0, 8080.0], [0.75, 0.2, 0.05]), state_p=[0.86, 0.06, 0.06, 0.02])
    f.set("duration", f.lognormal(2.0, 1.3))
    _sessions(f, (900, 1.0), (25_000, 1.6), 500)
    return f.finish()


def _dns_ntp(f: _Flows) -> np.ndarray:
    f.set("dst_port", f.choice([53.0, 123.0], [0.85, 0.15]))
    f.one_hot(_PROTO, [0.0, 1.0, 0.0])
    f.one_hot(_STATE, [0.93, 0.0, 0.0, 0.07])
    f.set("duration", f.lognormal(0.04, 0.8))
    f.set("src_bytes", f.lognormal(70, 0.3))
    f.set("dst_bytes", f.lognormal(180, 0.6))
    f.set("src_packets", f.choice([1.0, 2.0], [0.85, 0.15]))
    f.set("dst_packets", f.choice([1.0, 2.0], [0.85, 0.15]))
    return f.finish()


def _ssh(f: _Flows) -> np.ndarray:
    f.tcp(22.0, state_p=[0.9, 0.03, 0.05, 0.02])
    f.set("duration", f.lognormal(240.0, 1.4))
    _sessions(f, (12_000, 1.3), (40_000, 1.5), 120)
    return f.finish()


def _upload(f: _Flows) -> np.ndarray:
    f.tcp(f.choice([443.0, 22.0], [0.8, 0.2]), state_p=[0.92, 0.0, 0.05, 0.03])
    f.set("duration", f.lognormal(60.0, 1.0))
    _sessions(f, (3e6, 1.0), (20_000, 1.0), 1400)
    return f.finish()


def _ping(f: _Flows) -> np.ndarray:
    f.set("dst_port", 0.0)
    f.one_hot(_PROTO, [0.0, 0.0, 1.0])
    f.one_hot(_STATE, [0.9, 0.0, 0.0, 0.1])
    pkts = f.choice([1.0, 4.0, 5.0, 10.0])
    f.set("src_packets", pkts)
    f.set("dst_packets", pkts)
    f.set("src_bytes", 64 * pkts)
    f.set("dst_bytes", 64 * pkts)
    f.set("duration", pkts * f.lognormal(1.0, 0.2))
    return f.finish()


def _scan(f: _Flows) -> np.ndarray:
    common = [21.0, 22.0, 23.0, 25.0, 80.0, 110.0, 143.0, 443.0, 445.0, 3306.0, 3389.0, 8080.0]
    ports = np.where(
        f.rng.random(f.n) < 0.6, f.choice(common), f.rng.integers(1, 65536, f.n).astype(float)
    )
    f.tcp(ports, state_p=[0.08, 0.62, 0.15, 0.15])
    f.set("duration", f.lognormal(0.01, 1.5))
    f.set("src_packets", f.choice([1.0, 2.0, 3.0], [0.7, 0.2, 0.1]))
    f.set("dst_packets", f.choice([0.0, 1.0], [0.4, 0.6]))
    f.set("src_bytes", f.x[:, _F["src_packets"]] * f.choice([40.0, 44.0, 60.0]))
    f.set("dst_bytes", f.x[:, _F["dst_packets"]] * 40.0)
    return f.finish(psh_share=0.0)


def _syn_flood(f: _Flows) -> np.ndarray:
    f.tcp(f.choice([80.0, 443.0]), state_p=[0.05, 0.1, 0.25, 0.6])
    f.set("duration", f.lognormal(20.0, 1.0))
    pkts = np.maximum(5, f.lognormal(1500, 1.2))
    f.set("src_packets", pkts)
    f.set("dst_packets", pkts * f.rng.uniform(0.0, 0.3, f.n))
    f.set("src_bytes", pkts * f.choice([40.0, 54.0, 60.0]))
    f.set("dst_bytes", f.x[:, _F["dst_packets"]] * 58.0)
    return f.finish(syn=pkts, psh_share=0.0)


def _brute_force(f: _Flows) -> np.ndarray:
    f.tcp(
        f.choice([22.0, 21.0, 3389.0, 23.0], [0.6, 0.15, 0.2, 0.05]), state_p=[0.6, 0.05, 0.3, 0.05]
    )
    f.set("duration", f.lognormal(3.0, 0.7))
    _sessions(f, (2_000, 0.5), (3_000, 0.5), 110)
    return f.finish()


def _exfiltration(f: _Flows) -> np.ndarray:
    f.tcp(f.choice([443.0, 53.0, 8443.0], [0.8, 0.05, 0.15]), state_p=[0.85, 0.0, 0.1, 0.05])
    f.set("duration", f.lognormal(300.0, 1.0))
    _sessions(f, (8e6 / 4, 0.9), (15_000, 1.0), 1300)
    return f.finish()


def _amplification(f: _Flows) -> np.ndarray:
    f.set("dst_port", f.choice([53.0, 123.0, 1900.0, 11211.0], [0.5, 0.3, 0.1, 0.1]))
    f.one_hot(_PROTO, [0.0, 1.0, 0.0])
    f.one_hot(_STATE, [0.8, 0.0, 0.0, 0.2])
    pkts = np.maximum(1, f.lognormal(40, 1.0))
    f.set("src_packets", pkts)
    f.set("dst_packets", pkts)
    f.set("src_bytes", pkts * f.lognormal(70, 0.3))
    f.set("dst_bytes", pkts * f.lognormal(1200, 0.6))
    f.set("duration", f.lognormal(5.0, 1.0))
    return f.finish()


def _icmp_flood(f: _Flows) -> np.ndarray:
    f.set("dst_port", 0.0)
    f.one_hot(_PROTO, [0.0, 0.0, 1.0])
    f.one_hot(_STATE, [0.5, 0.0, 0.0, 0.5])
    pkts = np.maximum(5, f.lognormal(500, 1.0))
    f.set("src_packets", pkts)
    f.set("dst_packets", pkts * f.rng.uniform(0.0, 1.0, f.n))
    f.set("src_bytes", pkts * f.choice([64.0, 1000.0, 1480.0]))
    f.set("dst_bytes", f.x[:, _F["dst_packets"]] * 64.0)
    f.set("duration", pkts * f.lognormal(0.01, 1.0))
    return f.finish()


_Profile = Callable[[_Flows], np.ndarray]
_BENIGN: list[tuple[_Profile, float]] = [
    (_web, 0.55),
    (_dns_ntp, 0.2),
    (_ssh, 0.1),
    (_upload, 0.07),
    (_ping, 0.08),
]
_ATTACK: list[tuple[_Profile, float]] = [
    (_scan, 0.3),
    (_syn_flood, 0.15),
    (_brute_force, 0.25),
    (_exfiltration, 0.12),
    (_amplification, 0.1),
    (_icmp_flood, 0.08),
]


def _draw(profiles: list[tuple[_Profile, float]], n: int, rng: np.random.Generator) -> np.ndarray:
    counts = rng.multinomial(n, [w for _, w in profiles])
    return np.concatenate(
        [make(_Flows(int(c), rng)) for (make, _), c in zip(profiles, counts, strict=True)]
    )


def load_intrusion_dataset(seed: int = 0) -> Dataset:
    """4,000 synthetic flows, 40% attacks, with a stratified 75/25 split.

    Parameters
    ----------
    seed : int
        Seeds the generator and the split; the same seed gives the same rows.

    Returns
    -------
    Dataset
        ``x`` float32 ``(n, 20)`` in raw units (valid for :func:`intrusion_input_spec`),
        labels 0 = ``"benign"``, 1 = ``"attack"``, with ``feature_names``.
    """
    rng = np.random.default_rng([seed, 7_331])
    n_attack = int(_N_ROWS * _ATTACK_SHARE)
    benign = _draw(_BENIGN, _N_ROWS - n_attack, rng)
    attack = _draw(_ATTACK, n_attack, rng)
    x = np.concatenate([benign, attack])
    y = np.concatenate([np.zeros(len(benign)), np.ones(len(attack))]).astype(np.int64)
    flip = rng.random(len(y)) < _LABEL_NOISE
    y[flip] = 1 - y[flip]
    spec = intrusion_input_spec()
    lo, hi = spec.bounds()
    ints = spec.integer_mask()
    x[:, ints] = np.round(x[:, ints])
    x = np.clip(x, lo, hi).astype(np.float32)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    train_idx, test_idx = stratified_split(y, test_size=0.25, seed=seed)
    return Dataset(
        name="intrusion",
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        classes=["benign", "attack"],
        feature_names=list(INTRUSION_FEATURES),
        description=(
            "Synthetic network flows (Bastion built-in): benign web, DNS/NTP, SSH, upload "
            "and ping traffic against scans, floods, brute force, exfiltration and "
            "amplification attacks, overlapping on purpose, 2% label noise."
        ),
        metadata={"source": "bastion.data.intrusion", "seed": str(seed), "split": "75/25"},
    )
