"""Speech models on one audio encoder (log-mel front end, SpecAugment, conv subsampling, ``core`` encoder):
the CTC recogniser and the spoken-command classifier.

Forward pass of the CTC model (documented for attention-map plots)::

    feats, n = model.features(wave, wave_lens)   # (B, T, n_mels) log-mel at hop 10 ms, valid frames (B,)
    x, pos, pad = model.subsample(feats, n)      # (B, N, dim); pos (1, N, 1) frame centre times in seconds;
                                                 # pad (B, N) True = padding; N = ceil(T / 4)
    x = model.encoder(x, pos, key_padding_mask=pad)   # core.nn.blocks.TransformerEncoder (+ Conformer convs)
    log_probs = model.head(x).log_softmax(-1)    # (B, N, vocab), index 0 = CTC blank

Attention maps over the ``N`` subsampled frames (40 ms apart) come from
``core.nn.attention.record_attention(model)``; frame ``i`` is centred at ``pos[0, i, 0]`` seconds.
The encoder's PE sees times multiplied by ``coord_scale = sample_rate / hop_length`` (one unit is
one 10 ms frame), so ``pe=`` acts on real time for any hop or subsampling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torchaudio
import torchaudio.transforms as T
from torch import Tensor, nn

from core.nn.attention import MultiHeadAttention
from core.nn.blocks import TransformerEncoder, encoder_group_matcher
from core.nn.conformer import ConformerConv
from speech.augment import SpeechAugment, warp_frequencies
from speech.graphs import wave_graph

__all__ = ["AudioTransformer", "CommandClassifier", "ConvSubsampling", "CTCModel", "LogMel"]


class LogMel(nn.Module):
    """Log-mel features with per-utterance mean/variance normalisation over valid frames.

    ``lifter`` > 0 keeps only that many cepstral coefficients of each frame (a DCT over the mel axis, truncated,
    and back): the spectral envelope stays on the mel axis while the harmonics of the voice's pitch, which a
    synthesiser draws its own way, are smoothed out.

    ``top_db`` floors each utterance's mel power that many dB below its loudest bin (torchaudio's
    ``amplitude_to_DB`` does so on a dB scale; Whisper's front end floors at 80 dB). Without it, the
    normalisation stretches whatever lies in an empty band (above 4 kHz in an 8 kHz recording, a digital-silence
    gap) to unit variance, and that residue (resampling leakage, dither, a WAV's quantisation) differs from one
    recording chain to the next.
    Padding frames hold no more than a window's tail of the utterance, so they never set its loudest bin.
    """

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, lifter: int = 0,
                 top_db: float | None = None, f_max: float | None = None) -> None:
        super().__init__()
        if f_max is not None and not 0 < f_max <= sample_rate / 2:
            raise ValueError(f"model.f_max={f_max} must be in (0, {sample_rate / 2:g}] Hz (or null for the Nyquist "
                             "frequency).")
        if not 0 <= lifter <= n_mels:
            raise ValueError(f"model.lifter={lifter} must be in 0..n_mels={n_mels} (0: no liftering).")
        if top_db is not None and top_db <= 0:
            raise ValueError(f"model.top_db={top_db} must be positive (or null for no floor).")
        self.hop_length, self.top_db = hop_length, top_db
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop_length,
                                    n_mels=n_mels, f_max=f_max, center=True, power=2.0)
        smooth = None
        if lifter:
            dct = torchaudio.functional.create_dct(lifter, n_mels, norm="ortho")  # (n_mels, lifter), orthonormal
            smooth = dct @ dct.T  # projection onto the first ``lifter`` cepstral coefficients
        self.register_buffer("smooth", smooth, persistent=False)

    def frames(self, lengths: Tensor) -> Tensor:
        """Frames of ``lengths`` samples (``center=True``): ``L // hop + 1``."""
        return lengths // self.hop_length + 1

    def forward(self, wave: Tensor, lengths: Tensor,
                spectral: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``spectral`` transforms the power spectrogram ``(B, F, T)`` before the mel filters (augmentation)."""
        with torch.autocast(wave.device.type, enabled=False):
            power = self.mel.spectrogram(wave.float())
            if spectral is not None:
                power = spectral(power)
            feats = (self.mel.mel_scale(power) + 1e-6).log()  # (B, M, T)
            if self.top_db is not None:  # top_db in natural-log units, below each utterance's loudest bin
                feats = feats.maximum(feats.amax((1, 2), keepdim=True) - self.top_db * math.log(10) / 10)
            feats = feats.transpose(1, 2)  # (B, T, M)
            if self.smooth is not None:
                feats = feats @ self.smooth
        n = self.frames(lengths).clamp(max=feats.shape[1])
        valid = (torch.arange(feats.shape[1], device=wave.device)[None] < n[:, None]).unsqueeze(-1)  # (B, T, 1)
        cnt = n.clamp(min=1)[:, None, None].float()
        mean = (feats * valid).sum(1, keepdim=True) / cnt
        var = (((feats - mean) * valid) ** 2).sum(1, keepdim=True) / cnt
        return ((feats - mean) / (var + 1e-5).sqrt()) * valid, n


class ConvSubsampling(nn.Module):
    """Two ``3x3`` stride-2 conv layers over (time, mel) and a linear map: ``T -> ceil(T / 4)`` frames."""

    def __init__(self, *, n_mels: int, channels: int, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, 2, 1), nn.GELU(),
                                  nn.Conv2d(channels, channels, 3, 2, 1), nn.GELU())
        self.proj = nn.Linear(channels * ((n_mels + 3) // 4), dim)
        self.factor = 4

    @staticmethod
    def out_frames(n: Tensor) -> Tensor:
        return (n + 3) // 4  # two rounds of (n - 1) // 2 + 1

    def forward(self, feats: Tensor) -> Tensor:
        x = self.conv(feats.unsqueeze(1))  # (B, C, T/4, M/4)
        return self.proj(x.permute(0, 2, 1, 3).flatten(2))  # (B, T/4, dim)


class AudioTransformer(nn.Module):
    """The audio encoder every speech model shares: waveforms to encoded frames with 1-D positions (time).

    Args:
        sample_rate, n_fft, hop_length, n_mels: front end (defaults: 25 ms windows, 10 ms hop, 80 mels).
        lifter: cepstral coefficients the front end keeps per frame (:class:`LogMel`; 0: all).
        top_db: floor of each utterance's mel power, dB below its loudest bin (:class:`LogMel`; ``None``: none).
        f_max: top of the mel filterbank, Hz (``None``: the Nyquist frequency); 4000 reads only the telephone band.
        freq_masks, freq_mask_param, time_masks, time_mask_frac: SpecAugment in training (torchaudio).
        augment: keyword arguments of :class:`speech.augment.SpeechAugment` (speed, reverberation, babble,
            noise, vocal-tract-length warp, equaliser, band-limiting) applied in training, or ``None``.
        subsample_channels: conv channels of the x4 subsampling.
        dim, depth, num_heads, mlp_ratio, drop, attn_drop, drop_path: encoder (timm names).
        conv_kernel: > 0 adds a Conformer convolution module to every encoder layer (its conv slot).
        conv_norm: ``batch`` (the paper's, over valid frames) or ``group`` (per utterance) in that module.
        macaron: Conformer blocks: half-step feed-forwards around attention and convolution, a closing norm.
        max_seconds: longest audio the learned PE table covers (other PEs have no limit).
        attn, pe: attention and PE factories (``attention=``, ``pe=``).
    """

    pos_ndim = 1

    def __init__(self, *, sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160,
                 n_mels: int = 80, lifter: int = 0, top_db: float | None = None, f_max: float | None = None,
                 freq_masks: int = 2, freq_mask_param: int = 15, time_masks: int = 2, time_mask_frac: float = 0.05,
                 subsample_channels: int = 64, dim: int = 144, depth: int = 6,
                 num_heads: int = 4, mlp_ratio: float = 4.0, drop: float = 0.1, attn_drop: float = 0.0,
                 drop_path: float = 0.0, conv_kernel: int = 0, conv_norm: str = "group", macaron: bool = False,
                 max_seconds: float = 30.0, augment: dict | None = None,
                 attn: Callable[..., nn.Module] = MultiHeadAttention,
                 pe: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model.dim={dim} is not divisible by model.num_heads={num_heads}.")
        if conv_kernel and conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel={conv_kernel} must be odd (or 0 for no convolution module).")
        if hop_length <= 0 or n_fft < hop_length:
            raise ValueError(f"model.hop_length={hop_length} must be positive and at most model.n_fft={n_fft}.")
        self.dim, self.sample_rate, self.hop_length = dim, int(sample_rate), hop_length
        self.frontend = LogMel(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                               lifter=lifter, top_db=top_db, f_max=f_max)
        self.augment = (SpeechAugment(sample_rate=sample_rate, **dict(augment))
                        if augment else None)
        self.freq_masks = nn.ModuleList(T.FrequencyMasking(freq_mask_param, iid_masks=True) for _ in range(freq_masks))
        self.time_masks, self.time_mask_frac = time_masks, time_mask_frac
        self.subsampling = ConvSubsampling(n_mels=n_mels, channels=subsample_channels, dim=dim)
        self.coord_scale = sample_rate / hop_length  # one PE unit = one 10 ms frame
        conv = (functools.partial(ConformerConv, kernel_size=conv_kernel, drop=drop, norm=conv_norm)
                if conv_kernel else None)
        self.encoder = TransformerEncoder(dim=dim, depth=depth, num_heads=num_heads, attn=attn, pe=pe, conv=conv,
                                          ndim=self.pos_ndim, coord_scale=self.coord_scale,
                                          extent=(int(max_seconds * self.coord_scale) + 1,),
                                          mlp_ratio=mlp_ratio, drop=drop, attn_drop=attn_drop, drop_path=drop_path,
                                          macaron=macaron)

    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    def group_matcher(self, coarse: bool = False) -> dict:
        return encoder_group_matcher("encoder", stem=("frontend.", "subsampling."))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints before the encoder layer's conv slot kept the Conformer modules in ``convs.<i>``
        for key in [k for k in state_dict if k.startswith(prefix + "convs.")]:
            i, rest = key[len(prefix + "convs."):].split(".", 1)
            state_dict[f"{prefix}encoder.blocks.{i}.conv.{rest}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def frame_seconds(self) -> float:
        """Time between two encoder frames (after subsampling)."""
        return self.subsampling.factor * self.hop_length / self.sample_rate

    def spec_augment(self, feats: Tensor, n: Tensor) -> Tensor:
        """Frequency and time masks (torchaudio), time masks up to ``time_mask_frac`` of the shortest input."""
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, M, T)
        for m in self.freq_masks:
            x = m(x)
        width = int(self.time_mask_frac * int(n.min()))
        if width > 0:
            for _ in range(self.time_masks):
                x = T.TimeMasking(width, iid_masks=True)(x)
        return x.squeeze(1).transpose(1, 2)

    def features(self, wave: Tensor, wave_lens: Tensor, warp: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        """Normalised log-mel ``(B, T, n_mels)`` (augmentation and SpecAugment in training), valid frames ``(B,)``.
        ``warp`` outside training: the spectrum's frequency axis warped by it (:func:`warp_frequencies`; a factor,
        or one per utterance ``(B, 1, 1)``)."""
        spectral = None
        if self.training and self.augment is not None:
            wave, wave_lens = self.augment.wave(wave, wave_lens)
            spectral = functools.partial(self.augment.spectrum, frames=self.frontend.frames(wave_lens))
        elif not self.training and (torch.is_tensor(warp) or warp != 1.0):
            spectral = functools.partial(warp_frequencies, alpha=warp)
        feats, n = self.frontend(wave, wave_lens, spectral)
        if self.training:
            feats = self.spec_augment(feats, n)
        return feats, n

    def frame_times(self, num_frames: int, device: torch.device | None = None) -> Tensor:
        """Centre time in seconds of each subsampled frame, ``(1, N, 1)``."""
        return (torch.arange(num_frames, device=device, dtype=torch.float32) * self.frame_seconds)[None, :, None]

    def subsample(self, feats: Tensor, n: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.subsampling(feats)  # (B, N, dim)
        out_n = self.subsampling.out_frames(n)
        pad = torch.arange(x.shape[1], device=x.device)[None] >= out_n[:, None]  # (B, N)
        return x, self.frame_times(x.shape[1], x.device), pad

    def encode(self, wave: Tensor, wave_lens: Tensor, warp: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        """``wave`` (B, S) at ``sample_rate``, ``wave_lens`` (B,) -> frames (B, N, dim), padding (B, N); ``warp``:
        :meth:`features`'."""
        feats, n = self.features(wave, wave_lens, warp)
        x, pos, pad = self.subsample(feats, n)
        return self.encoder(x, pos, key_padding_mask=pad), pad


class CTCModel(AudioTransformer):
    """Character CTC recogniser: :class:`AudioTransformer` and a linear head over the vocabulary.

    Args:
        vocab: CTC symbols, index 0 the blank (supplied by the datamodule).
        inter_ctc: an encoder layer (1-based) whose output also goes through the head in training, for an
            intermediate CTC loss (InterCTC, Lee & Watanabe 2021; :meth:`forward` with ``intermediate``, the task
            weighs it); 0: none.
        eval_warps: vocal-tract-length warps of the spectrum (:func:`warp_frequencies`) whose posteriors are
            averaged outside training (validation, test, ``mas-predict``, export): a voice whose formants sit
            higher or lower than the training voices' is also read moved towards them; ``None``: one pass.
        **kw: the audio encoder's (:class:`AudioTransformer`).
    """

    def __init__(self, *, vocab: list[str], inter_ctc: int = 0, eval_warps: list[float] | None = None, **kw) -> None:
        super().__init__(**kw)
        try:
            self.eval_warps = tuple(float(w) for w in ([1.0] if eval_warps is None else eval_warps))
        except (TypeError, ValueError):
            self.eval_warps = ()  # not numbers: refused below with the rest
        if not self.eval_warps or not all(0.5 <= w <= 2.0 for w in self.eval_warps):
            raise ValueError(f"model.eval_warps={eval_warps} must list warp factors in [0.5, 2] (1.0: the recording "
                             "as it is), or be null for one pass.")
        self.vocab = [str(v) for v in vocab]
        self.head = nn.Linear(self.dim, len(self.vocab))
        depth = len(self.encoder.blocks)
        if not isinstance(inter_ctc, int) or not 0 <= inter_ctc < max(depth, 1):
            below = f"below the last (1..{depth - 1})" if depth > 1 else "below the last, and this encoder has only one"
            raise ValueError(f"model.inter_ctc={inter_ctc} must name an encoder layer {below}, or be 0 for none.")
        self.inter_ctc = inter_ctc

    def export_graphs(self) -> list:
        return [wave_graph(self, sample_rate=self.sample_rate, outputs=["log_probs", "frames"],
                           note="wave (B, S), wave_lens (B,) -> CTC log-probs (B, N, V), valid frames (B,)")]

    def forward(self, wave: Tensor, wave_lens: Tensor, intermediate: bool = False) -> tuple[Tensor, ...]:
        """CTC log-probs ``(B, N, V)`` (outside training, averaged over ``eval_warps``) and valid frames ``(B,)``;
        with ``intermediate`` (training), also the log-probs the same head reads from layer ``inter_ctc`` (through
        the final norm): trained to spell too, that layer regularises the ones above it (InterCTC). Through
        ``__call__`` either way, so ``compile`` covers both."""
        if intermediate:
            if not self.inter_ctc:
                raise ValueError("intermediate log-probs need model.inter_ctc, the encoder layer to read.")
            states, pad = self.hidden_states(wave, wave_lens)
            final, middle = (self.head(states[i]).float().log_softmax(-1) for i in (-1, self.inter_ctc))
            return final, (~pad).sum(1), middle
        warps = (1.0,) if self.training else self.eval_warps
        if len(warps) == 1:
            x, pad = self.encode(wave, wave_lens, warps[0])
            return self.head(x).float().log_softmax(-1), (~pad).sum(1)
        # the warps as one batch: one encoder call (and an export graph the size of one pass), K rows per utterance
        k, b = len(warps), wave.shape[0]
        factors = torch.tensor(warps, dtype=torch.float32, device=wave.device)[:, None, None]  # (K, 1, 1)
        # (K * B, 1, 1), shaped from the input rather than by repeat_interleave(b), which an ONNX export fixes to
        # the tracing batch
        alpha = (factors * torch.ones_like(wave[:, :1], dtype=torch.float32)).reshape(-1, 1, 1)
        x, pad = self.encode(wave.repeat(k, 1), wave_lens.repeat(k), alpha)
        log_probs = self.head(x).float().log_softmax(-1).unflatten(0, (k, b))
        # the mean in probability, not in log: one warp's confident spike survives another's near-zero
        return torch.logsumexp(log_probs, 0) - math.log(k), (~pad[:b]).sum(1)

    def hidden_states(self, wave: Tensor, wave_lens: Tensor) -> tuple[list[Tensor], Tensor]:
        """The subsampled input, then every encoder layer's output as the head reads it (through the final norm),
        ``(B, N, dim)`` each (entry ``i``: layer ``i``), and the padding ``(B, N)``."""
        x, pos, pad = self.subsample(*self.features(wave, wave_lens))
        return [self.encoder.norm(h) for h in self.encoder.hidden_states(x, pos, key_padding_mask=pad)], pad


class TorchaudioConformerCTC(CTCModel):
    """:class:`CTCModel` whose encoder is ``torchaudio.models.Conformer`` (same front end, subsampling and
    head; ``model=torchaudio_conformer``): the peer baseline of ``bench/time_to_quality.py``. torchaudio's
    Conformer adds no positional encoding and has its own attention, so ``attention=``/``pe=`` do not apply."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        from torchaudio.models import Conformer

        blocks = len(self.encoder.blocks)
        heads, mlp = self.encoder.blocks[0].attn.num_heads, self.encoder.blocks[0].mlp.fc1.out_features
        kernel, drop = int(kw.get("conv_kernel") or 15), float(kw.get("drop", 0.1))
        del self.encoder
        self.conformer = Conformer(input_dim=self.dim, num_heads=heads, ffn_dim=mlp, num_layers=blocks,
                                   depthwise_conv_kernel_size=kernel, dropout=drop)

    def no_weight_decay(self) -> set[str]:
        return set()

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^(frontend|subsampling)\.", "blocks": r"^conformer\.conformer_layers\.(\d+)"}

    def encode(self, wave: Tensor, wave_lens: Tensor, warp: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        feats, n = self.features(wave, wave_lens, warp)
        x, _, pad = self.subsample(feats, n)
        out, _ = self.conformer(x, (~pad).sum(1))
        return out, pad

    def hidden_states(self, wave: Tensor, wave_lens: Tensor) -> tuple[list[Tensor], Tensor]:
        # torchaudio's layers each end in a norm and its stack adds none: the head reads them as they are
        x, _, pad = self.subsample(*self.features(wave, wave_lens))
        states, x = [x], x.transpose(0, 1)  # its layers take (N, B, dim)
        for layer in self.conformer.conformer_layers:
            x = layer(x, pad)
            states.append(x.transpose(0, 1))
        return states, pad


class CommandClassifier(AudioTransformer):
    """Spoken-command (keyword) classifier: :class:`AudioTransformer`, mean over valid frames, linear head.

    Args:
        num_classes: labels (supplied by the datamodule).
        **kw: the audio encoder's (:class:`AudioTransformer`).
    """

    def __init__(self, *, num_classes: int, **kw) -> None:
        super().__init__(**kw)
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.dim, self.num_classes)

    def export_graphs(self) -> list:
        return [wave_graph(self, sample_rate=self.sample_rate, outputs=["logits"],
                           note="wave (B, S), wave_lens (B,) -> command logits (B, K)")]

    def forward(self, wave: Tensor, wave_lens: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        x, pad = self.encode(wave, wave_lens)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        return self.head((x * keep).sum(1) / keep.sum(1).clamp_min(1.0))

    @torch.no_grad()
    def attention_example(self, inputs: tuple[Tensor, ...], label: int, datamodule) -> dict:
        """Last encoder layer's attention over the frames of one clip (see :mod:`core.report.gallery`)."""
        from speech.plots import frame_attention

        wave, lens = inputs[0], inputs[1]
        attn, _, feats = frame_attention(self, wave[0, : int(lens[0])])
        pred = int(self(wave[:1], lens[:1]).argmax(-1))
        classes = getattr(datamodule, "classes", None) or list(range(self.num_classes))
        return {"kind": "frames", "attn": attn.numpy(), "spectrogram": feats.T.numpy(),
                "title": f"label {classes[label]}, predicted {classes[pred]}"}
