"""Kaldi log-mel fbank, batched, as the speech student's first layer.

Speech features are computed inside the student (`SpeechFeatures` is its first
layer), on whatever device the student runs on, one padded batch at a time. The
fbank is Kaldi's (the one `torchaudio.compliance.kaldi.fbank` computes, so it
matches WeSpeaker / Kaldi recipes), written batched: `kaldi.fbank` takes one
channel a call, and a Python loop over a batch costs kernel launches per
utterance on a GPU. On 2 busy CPU cores, 32 x 2 s took 0.47 s batched against
1.16 s for the `kaldi.fbank` loop (torchaudio's MelSpectrogram: 0.21 s, but its
Hz-domain triangles, centred window and no DC removal or pre-emphasis differ from
Kaldi, whose features WeSpeaker and Kaldi recipes and checkpoints use). The
batched form equals `kaldi.fbank` to float rounding (tests/test_features.py).

It is written to export (`xmd export`): frames by an index gather, and the
per-frame DC removal, pre-emphasis, window and real DFT as one precomputed
matrix (`spectrum_basis`), so the traced graph holds only Gather, MatMul and
elementwise ops with a dynamic time axis: TorchScript and ONNX Runtime run the
whole waveform -> embedding student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.compliance.kaldi import get_mel_banks

from xmd_cli.errors import XmdError

# Kaldi's fbank expects int16-scaled samples; soundfile gives [-1, 1]. Scaling does
# not change mean-normalised features except through the log floor below.
INT16_SCALE = 32768.0
PREEMPHASIS = 0.97


class SpeechFeatures(nn.Module):
    """Waveform batch (B, samples) -> mean-normalised log-mel fbank (B, frames, n_mels).

    Kaldi framing (25 ms windows every 10 ms, `snip_edges`), DC removal,
    pre-emphasis 0.97, Povey window, power spectrum, Kaldi mel banks, log. Then the
    mean over time of each utterance is subtracted (cepstral mean normalisation).
    With `lengths` (relative lengths in (0, 1], speechbrain's convention), padded
    frames neither enter the mean nor keep a value: they are set to 0.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, frame_ms: float = 25.0,
                 shift_ms: float = 10.0, low_hz: float = 20.0, high_hz: float = 0.0,
                 mean_norm: bool = True):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.window_size = int(sample_rate * frame_ms / 1000)
        self.window_shift = int(sample_rate * shift_ms / 1000)
        self.n_fft = 1 << (self.window_size - 1).bit_length()  # Kaldi rounds up to a power of two
        self.mean_norm = mean_norm
        banks, _ = get_mel_banks(n_mels, self.n_fft, float(sample_rate), low_hz, high_hz, 100.0, -500.0, 1.0)
        # Kaldi's banks omit the Nyquist bin; pad it with zero weight.
        self.register_buffer("mel_banks", F.pad(banks.float(), (0, 1)).T.contiguous(), persistent=False)
        self.register_buffer("spectrum", spectrum_basis(self.window_size, self.n_fft), persistent=False)

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames Kaldi makes of `num_samples` samples (snip_edges: only whole windows)."""
        if isinstance(num_samples, torch.Tensor):
            return torch.clamp((num_samples - self.window_size) // self.window_shift + 1, min=0)
        return max(0, (int(num_samples) - self.window_size) // self.window_shift + 1)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"SpeechFeatures expects (batch, samples), got shape {tuple(wave.shape)}")
        if wave.shape[1] < self.window_size:
            raise XmdError(f"speech input of {wave.shape[1]} samples is shorter than one "
                           f"{self.window_size}-sample analysis window",
                           hint="use longer utterances or a longer student.crop_seconds")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            feats = self._log_fbank(wave.float() * INT16_SCALE)
        if lengths is None:
            mask = None
        else:
            samples = torch.round(lengths.to(wave.device).float() * wave.shape[1]).long()
            valid = torch.clamp(self.num_frames(samples), min=1)
            mask = (torch.arange(feats.shape[1], device=wave.device)[None, :] < valid[:, None])
            mask = mask.unsqueeze(-1).to(feats.dtype)
        if self.mean_norm:
            if mask is None:
                feats = feats - feats.mean(dim=1, keepdim=True)
            else:
                mean = (feats * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True)
                feats = (feats - mean) * mask
        elif mask is not None:
            feats = feats * mask
        return feats

    def _frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T, window) analysis windows of (B, samples), as Kaldi's snip_edges framing.

        An index gather rather than `Tensor.unfold`: ONNX has no Unfold with a size
        known only at run time, while a gather with indices computed from the input's
        shape exports (and traces) with a dynamic time axis. Same samples, same values.
        """
        count = (wave.shape[1] - self.window_size) // self.window_shift + 1
        starts = torch.arange(count, device=wave.device) * self.window_shift
        offsets = torch.arange(self.window_size, device=wave.device)
        return wave[:, starts[:, None] + offsets[None, :]]

    def _log_fbank(self, wave: torch.Tensor) -> torch.Tensor:
        spectrum = self._frames(wave) @ self.spectrum  # (B, T, 2 * bins): real parts, then imaginary
        bins = self.spectrum.shape[1] // 2
        power = spectrum[..., :bins].square() + spectrum[..., bins:].square()
        mel = power @ self.mel_banks
        return torch.clamp(mel, min=torch.finfo(mel.dtype).eps).log()


def spectrum_basis(window_size: int, n_fft: int) -> torch.Tensor:
    """(window, 2 * (n_fft // 2 + 1)): a raw frame -> Kaldi's spectrum, as one matrix.

    Everything Kaldi does to a frame before its FFT is linear: remove the frame's mean
    (DC), pre-emphasise x[j] - 0.97 x[j-1] with x[-1] = x[0], multiply by the Povey
    window, zero-pad to n_fft. So is the real DFT. Their product, computed once in
    float64, is one matmul at run time: it exports to ONNX (which has no rfft in the
    TorchScript exporter) and TorchScript, runs as a GEMM in every runtime, and keeps
    the features equal to `kaldi.fbank` within float rounding (tests/test_features.py).
    """
    eye = torch.eye(window_size, dtype=torch.float64)
    remove_dc = eye - 1.0 / window_size
    previous = torch.diag(torch.ones(window_size - 1, dtype=torch.float64), -1)
    previous[0, 0] = 1.0  # x[-1] = x[0]
    preemphasis = eye - PREEMPHASIS * previous
    window = torch.hann_window(window_size, periodic=False, dtype=torch.float64).pow(0.85)  # Povey
    frame_to_windowed = window[:, None] * (preemphasis @ remove_dc)  # (window, window), acts on a column
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * torch.pi * torch.arange(window_size, dtype=torch.float64)[:, None] * k[None, :] / n_fft
    dft = torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1)  # samples past the window are zero padding
    return (frame_to_windowed.T @ dft).float()
