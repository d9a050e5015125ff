"""PocketSphinx's US-English acoustic model, read as the statistics of real speech it was trained on.

The ``pocketsphinx`` wheel ships a phonetically-tied-mixture HMM (``model/en-us/en-us``) trained on recordings
of real talkers, and the CMU pronouncing dictionary. This module reads the parts a synthesiser needs, with
numpy alone (the package is only located, not imported: its decoder is not needed):

- ``mdef`` (binary): the 42 base phones and the tree that maps a phone in its left/right context and word
  position to a triphone, whose three emitting states each have a senone (tied state);
- ``means``, ``variances``: per base phone, three codebooks (streams) of 128 diagonal Gaussians over 13
  coefficients each: the static cepstra ``c``, their deltas ``c[t+2] - c[t-2]`` and delta-deltas
  ``(c[t+3] - c[t-1]) - (c[t+1] - c[t-3])`` (``feat.params``: ``1s_c_d_dd``, ``svspec 0-12/13-25/26-38``);
- ``sendump``: each senone's mixture weights over its base phone's codebook per stream, 8-bit quantised
  negative logs;
- ``transition_matrices``: per base phone, each state's self-loop count (so its expected duration).

The cepstra are those of Sphinx's front end: 25 unit-area mel filters 130-6,800 Hz on 16 kHz audio after
0.97 pre-emphasis, natural-log power, orthonormal DCT-II, sine lifter 22, utterance mean removed.
"""

from __future__ import annotations

import functools
import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.train.errors import InputError

__all__ = ["WORD_BEGIN", "WORD_END", "WORD_INTERNAL", "WORD_SINGLE", "AcousticModel", "load_model",
           "model_dir", "pronunciations"]

# Sphinx's word positions, the first level of the triphone tree.
WORD_INTERNAL, WORD_BEGIN, WORD_END, WORD_SINGLE = 0, 1, 2, 3
_BYTE_ORDER_MAGIC = 0x11223344
_SENDUMP_LOG_SCALE = 1024 * np.log(1.0001)  # logmath base 1.0001, shifted by 10 bits when quantised
_STREAMS = 3  # static cepstra, deltas, delta-deltas (1s_c_d_dd)
_VARIANCE_FLOOR = 1e-4  # Sphinx's own -varfloor: a few densities no senone uses hold zero variances


def model_dir() -> Path:
    """The ``en-us`` model folder of the installed ``pocketsphinx`` wheel."""
    spec = importlib.util.find_spec("pocketsphinx")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model" / "en-us" if spec else None
    if folder is None or not (folder / "en-us" / "mdef").is_file():
        raise InputError("data.sphinx_fraction > 0 needs PocketSphinx's US-English model: "
                         "pip install pocketsphinx==5.1.1.")
    return folder


def _s3_body(path: Path) -> tuple[bytes, int]:
    """A SphinxTrain binary file's bytes and the offset just past its text header and byte-order word."""
    raw = path.read_bytes()
    start = raw.find(b"endhdr\n") + len(b"endhdr\n")
    if start < len(b"endhdr\n") or struct.unpack("<I", raw[start:start + 4].ljust(4, b"\0"))[0] != _BYTE_ORDER_MAGIC:
        raise InputError(f"{path} is not a little-endian SphinxTrain file.")
    return raw, start + 4


def _gaussians(path: Path) -> np.ndarray:
    """``(codebooks, streams, densities, 13)`` Gaussian means or variances of the three streams."""
    raw, o = _s3_body(path)
    n_codebooks, n_streams, n_densities = struct.unpack("<3i", raw[o:o + 12])
    o += 12
    lengths = struct.unpack(f"<{n_streams}i", raw[o:o + 4 * n_streams])
    if lengths != (13,) * _STREAMS:
        raise InputError(f"{path} has streams of widths {lengths}; three of 13 (1s_c_d_dd) are expected.")
    o += 4 * n_streams + 4  # then the total count
    flat = np.frombuffer(raw, "<f4", n_codebooks * n_densities * sum(lengths), o)
    return flat.reshape(n_codebooks, n_streams, n_densities, lengths[0]).astype(np.float64)


def _self_loops(path: Path) -> np.ndarray:
    """``(base phones, 3)`` probability of each emitting state staying put for another 10 ms frame."""
    raw, o = _s3_body(path)
    n, rows, cols, total = struct.unpack("<4i", raw[o:o + 16])
    counts = np.frombuffer(raw, "<f4", total, o + 16).reshape(n, rows, cols).astype(np.float64)
    probs = counts / counts.sum(-1, keepdims=True)
    return np.stack([probs[:, j, j] for j in range(rows)], axis=1)


def _mixture_weights(path: Path) -> np.ndarray:
    """``(senones, streams, densities)`` mixture weights, summing to 1 over the densities."""
    raw, o, header = path.read_bytes(), 0, []
    while (n := struct.unpack("<i", raw[o:o + 4])[0]) != 0:  # length-prefixed header strings, 0 ends them
        header.append(raw[o + 4:o + 4 + n].rstrip(b"\0").decode("latin-1"))
        o += 4 + n
    if "cluster_count 0" not in header or f"feature_count {_STREAMS}" not in header:
        raise InputError(f"{path} is not 8-bit mixture weights over {_STREAMS} streams (1s_c_d_dd), the kind read.")
    n_densities, n_senones = struct.unpack("<2i", raw[o + 4:o + 12])
    quantised = np.frombuffer(raw, np.uint8, _STREAMS * n_densities * n_senones, o + 12)
    logs = quantised.reshape(_STREAMS, n_densities, n_senones).transpose(2, 0, 1)  # (senones, streams, densities)
    weights = np.exp(-_SENDUMP_LOG_SCALE * logs.astype(np.float64))
    return weights / weights.sum(-1, keepdims=True)


@dataclass(frozen=True)
class AcousticModel:
    phones: tuple[str, ...]  # base phones; a phone's index is its codebook's
    means: np.ndarray  # (base phones, 3 streams, 128, 13): static, delta, delta-delta
    variances: np.ndarray  # (base phones, 3 streams, 128, 13)
    weights: np.ndarray  # (senones, 3 streams, 128)
    self_loops: np.ndarray  # (base phones, 3), by transition matrix
    senone_codebook: np.ndarray  # (senones,) base phone owning each senone
    tree: np.ndarray  # records (ctx, n_down, down): word position > base > left > right > triphone
    triphones: np.ndarray  # records (ssid, tmat, attr[4])
    state_senones: np.ndarray  # (senone sequences, 3)

    def index(self, phone: str) -> int:
        return self.phones.index(phone)

    def context_free_states(self, base: int) -> tuple[np.ndarray, int]:
        """The three senones and the transition matrix of the base phone on its own."""
        record = self.triphones[base]
        return self.state_senones[record["ssid"]], int(record["tmat"])

    def states(self, base: int, left: int, right: int, position: int) -> tuple[np.ndarray, int]:
        """The three senones and the transition matrix of ``base`` between ``left`` and ``right`` at a word
        position; the context-free phone where the model has no such triphone (no other position or context is
        tried: every digit's triphones are in the model)."""
        key, start, count = (position, base, left, right), 0, 4
        for level in range(4):
            nodes = self.tree[start:start + count]
            hit = np.flatnonzero(nodes["ctx"] == key[level])
            if not len(hit):
                break
            node = nodes[hit[0]]
            if node["n_down"] == 0:
                if node["down"] < 0:
                    break
                record = self.triphones[int(node["down"])]
                return self.state_senones[record["ssid"]], int(record["tmat"])
            start, count = int(node["down"]), int(node["n_down"])
        return self.context_free_states(base)


def _read_mdef(path: Path) -> dict:
    raw = path.read_bytes()
    if raw[:4] != b"BMDF":
        raise InputError(f"{path} is not a binary Sphinx model definition.")
    o = 12 + struct.unpack("<i", raw[8:12])[0]  # past magic, version and the format description
    n_base, n_phones, n_states, _, n_senones, _, n_sequences, _, n_nodes, _ = struct.unpack("<10i", raw[o:o + 40])
    o += 40
    names = []
    for _ in range(n_base):
        end = raw.index(b"\0", o)
        names.append(raw[o:end].decode())
        o = end + 1
    o = (o + 3) // 4 * 4
    tree = np.frombuffer(raw, np.dtype([("ctx", "<i2"), ("n_down", "<i2"), ("down", "<i4")]), n_nodes, o)
    o += tree.nbytes
    triphones = np.frombuffer(raw, np.dtype([("ssid", "<i4"), ("tmat", "<i4"), ("attr", "u1", 4)]), n_phones, o)
    o += triphones.nbytes + 4  # then the senone sequences' total length
    sequences = np.frombuffer(raw, "<i2", n_sequences * n_states, o).reshape(n_sequences, n_states)
    owner = np.full(n_senones, -1, np.int64)
    bases = np.where(np.arange(n_phones) < n_base, np.arange(n_phones), triphones["attr"][:, 1])
    owner[sequences[triphones["ssid"]].ravel()] = np.repeat(bases, n_states)
    if (owner < 0).any():
        raise InputError(f"{path} has senones that no phone uses.")
    return {"phones": tuple(names), "tree": tree, "triphones": triphones, "state_senones": sequences,
            "senone_codebook": owner}


@functools.cache
def load_model() -> AcousticModel:
    """The installed wheel's acoustic model (read once per process, about 0.3 s)."""
    d = model_dir() / "en-us"
    variances = np.maximum(_gaussians(d / "variances"), _VARIANCE_FLOOR)
    return AcousticModel(means=_gaussians(d / "means"), variances=variances,
                         weights=_mixture_weights(d / "sendump"),
                         self_loops=_self_loops(d / "transition_matrices"), **_read_mdef(d / "mdef"))


@functools.cache
def pronunciations() -> dict[str, list[list[str]]]:
    """The CMU dictionary shipped with the model: word -> its pronunciations, as base-phone lists."""
    out: dict[str, list[list[str]]] = {}
    for line in (model_dir() / "cmudict-en-us.dict").read_text(encoding="utf-8").splitlines():
        word, *phones = line.split()
        out.setdefault(word.split("(")[0], []).append(phones)
    return out
