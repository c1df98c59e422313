"""Speech quality: is this recording a good input for a speaker model?

Signals:

- `snr_db`: WADA-SNR (Kim & Stern, "Robust signal-to-noise ratio estimation
  based on waveform amplitude distribution analysis", Interspeech 2008). Clean
  speech amplitudes follow a Gamma distribution (shape 0.4), noise a Gaussian;
  G = ln(mean|x|) - mean(ln|x|) of the mixture grows monotonically with the SNR,
  and a table of G against SNR (`WADA_TABLE`) turns G into dB. It needs no
  voice-activity detection and no noise-only segment. It was compared with an
  energy-percentile estimator on eSpeak speech in white, pink, speech-shaped and
  babble noise (docs/quality.md): both rank SNRs equally well, WADA's bias is
  flatter over -5..30 dB, so WADA is kept.
- `active_ratio`: share of 20 ms frames that carry speech: frame power more than
  6 dB above the noise floor (10th percentile of frame powers) and within 40 dB
  of the loudest frames. Mostly silent recordings score low.
- `clipping`: share of samples in flat runs (3 or more samples) at the
  recording's peak magnitude; clean speech touches its peak at isolated samples,
  clipped speech is cut flat there. Relative to the peak, so clipping that was
  later scaled down is found too.
- `over_range`: share of samples beyond full scale (|x| > 1). Integer PCM cannot
  hold them; float files can, and any conversion to PCM, playback or a front
  end that assumes [-1, 1] clips them, so they are clipping not yet applied.
- `duration`: seconds.

Silence (peak below -60 dBFS), samples far beyond full scale (peak above
+12 dBFS: unnormalised or garbage float data, not a recording), non-finite
samples and unreadable or empty files force the score to 0 with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.quality.combine import QualityResult, Scorer, Signal

# G(SNR) for SNR = -10, -9, ..., 100 dB: Gamma(0.4) speech plus Gaussian noise,
# 4 million samples (seed 20080922, the same draws for every SNR so that the
# table is smooth); `wada_table` recomputes it. Below -10 dB the curve is too
# flat to read; above 100 dB it saturates.
WADA_SNR_DB = np.arange(-10.0, 101.0)
WADA_TABLE = np.array([
    0.41186, 0.41326, 0.41487, 0.41726, 0.42029, 0.42408, 0.42902, 0.43512,
    0.44233, 0.45146, 0.46214, 0.47489, 0.48921, 0.50545, 0.52339, 0.54358,
    0.56532, 0.58878, 0.61375, 0.64007, 0.66720, 0.69532, 0.72422, 0.75347,
    0.78265, 0.81201, 0.84143, 0.87041, 0.89919, 0.92758, 0.95553, 0.98261,
    1.00911, 1.03491, 1.05990, 1.08404, 1.10749, 1.13009, 1.15191, 1.17297,
    1.19327, 1.21290, 1.23173, 1.24984, 1.26711, 1.28364, 1.29945, 1.31467,
    1.32939, 1.34342, 1.35667, 1.36939, 1.38168, 1.39338, 1.40458, 1.41540,
    1.42556, 1.43528, 1.44459, 1.45347, 1.46201, 1.47021, 1.47807, 1.48554,
    1.49269, 1.49940, 1.50585, 1.51204, 1.51807, 1.52371, 1.52899, 1.53412,
    1.53901, 1.54368, 1.54814, 1.55249, 1.55664, 1.56062, 1.56433, 1.56791,
    1.57131, 1.57460, 1.57770, 1.58070, 1.58351, 1.58622, 1.58881, 1.59135,
    1.59371, 1.59597, 1.59811, 1.60016, 1.60217, 1.60410, 1.60588, 1.60755,
    1.60923, 1.61077, 1.61226, 1.61369, 1.61502, 1.61630, 1.61756, 1.61876,
    1.61989, 1.62092, 1.62196, 1.62295, 1.62387, 1.62480, 1.62565,
])
_AMPLITUDE_FLOOR = 1e-10  # Kim & Stern's floor: ln(0) would be -inf
SILENCE_PEAK = 1e-3  # -60 dBFS
FULL_SCALE = 1.0  # float audio's full scale: what integer PCM maps to [-1, 1)
# Past 4x full scale (+12 dBFS) no gain staging explains the file: the float data was
# written unnormalised (e.g. int16 values stored as float) or is damaged.
FAR_OVER_RANGE_PEAK = 4.0
FRAME_SECONDS, HOP_SECONDS = 0.02, 0.01

SNR_DB = Signal("snr_db", 10.0, 0.3, 1.0, "dB", "WADA-SNR estimate of speech power over noise power")
ACTIVE_RATIO = Signal("active_ratio", 0.2, 3.0, 1.0, "share",
                      "share of 20 ms frames with speech (6 dB over the noise floor)", scale="log2")
CLIPPING = Signal("clipping", 0.01, -1.5, 1.0, "share",
                  "share of samples in flat runs at the peak magnitude", scale="log2")
OVER_RANGE = Signal("over_range", 0.001, -1.5, 1.0, "share",
                    "share of samples beyond full scale (magnitude above 1)", scale="log2")
DURATION = Signal("duration", 1.0, 4.0, 1.0, "seconds", "length of the recording", scale="log2")


def wada_table(samples: int = 4_000_000, seed: int = 20080922) -> np.ndarray:
    """Recompute G(SNR) on `WADA_SNR_DB` by simulation (how `WADA_TABLE` was made)."""
    rng = np.random.default_rng(seed)
    shape = 0.4
    speech = rng.gamma(shape, 1.0 / np.sqrt(shape * (shape + 1)), samples) * rng.choice([-1.0, 1.0], samples)
    noise = rng.standard_normal(samples)
    table = [_wada_g(speech + noise * 10 ** (-snr / 20)) for snr in WADA_SNR_DB]
    return np.array(table)


def _wada_g(x: np.ndarray) -> float:
    a = np.abs(x)
    a = np.maximum(a / max(float(a.max()), _AMPLITUDE_FLOOR), _AMPLITUDE_FLOOR)
    return float(np.log(a.mean()) - np.mean(np.log(a)))


def wada_snr(x: np.ndarray) -> float:
    """WADA-SNR in dB, clamped to the table's range (-10..100 dB)."""
    return float(np.interp(_wada_g(x), WADA_TABLE, WADA_SNR_DB))


def frame_powers(x: np.ndarray, rate: int) -> np.ndarray:
    frame, hop = max(1, int(FRAME_SECONDS * rate)), max(1, int(HOP_SECONDS * rate))
    if len(x) < frame:
        return np.array([np.mean(x ** 2)])
    count = 1 + (len(x) - frame) // hop
    # Strided view: frames overlap, no copy of the signal.
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:count]
    return np.mean(frames ** 2, axis=1)


def active_ratio(x: np.ndarray, rate: int) -> float:
    power = frame_powers(x, rate)
    floor = np.percentile(power, 10)
    loudest = np.percentile(power, 99)
    active = (power > 4.0 * floor) & (power > loudest * 1e-4)  # +6 dB over the floor, within 40 dB of the top
    return float(np.mean(active))


def clipping_ratio(x: np.ndarray, min_run: int = 3) -> float:
    a = np.abs(x)
    at_peak = a >= 0.999 * a.max()
    # Lengths of the runs of consecutive at-peak samples.
    edges = np.diff(np.concatenate([[0], at_peak.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs = stops - starts
    return float(runs[runs >= min_run].sum() / len(x))


def over_range_ratio(x: np.ndarray) -> float:
    """Share of samples beyond full scale, on the samples as stored (before any DC removal)."""
    return float(np.mean(np.abs(x) > FULL_SCALE))


def speech_signals(x: np.ndarray, rate: int, over_range: float = 0.0) -> dict[str, float]:
    return {"snr_db": wada_snr(x), "active_ratio": active_ratio(x, rate),
            "clipping": clipping_ratio(x), "over_range": over_range, "duration": len(x) / rate}


def _read(item) -> tuple[np.ndarray, int]:
    if isinstance(item, tuple) and len(item) == 2:
        samples, rate = item
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 2:  # (samples, channels), as soundfile returns it
            x = x.mean(axis=1)
        if x.ndim != 1 or int(rate) <= 0:
            raise XmdError(f"audio must be 1-d samples with a positive rate, got shape {x.shape} at {rate} Hz")
        return x, int(rate)
    if isinstance(item, (str, Path)):
        from xmd_cli.data.media import read_audio

        samples, rate = read_audio(item)
        return samples.astype(np.float64), rate
    raise TypeError(f"the speech scorer takes a path or (samples, rate), got {type(item).__name__}")


class SpeechScorer(Scorer):
    modality = "speech"
    DEFAULTS = (SNR_DB, ACTIVE_RATIO, CLIPPING, OVER_RANGE, DURATION)

    def measure(self, item) -> dict[str, float] | QualityResult:
        loaded = self.load(item, _read)
        if isinstance(loaded, QualityResult):
            return loaded
        x, rate = loaded
        if x.size == 0:
            return self.failure("no audio samples (empty recording)", {"duration": 0.0})
        duration = {"duration": x.size / rate}
        if not np.all(np.isfinite(x)):
            return self.failure("audio holds NaN or infinite samples; the file is damaged: re-export it", duration)
        over = {**duration, "over_range": over_range_ratio(x)}
        stored_peak = float(np.max(np.abs(x)))
        if stored_peak > FAR_OVER_RANGE_PEAK:
            return self.failure(f"samples reach {20 * np.log10(stored_peak):+.0f} dBFS, far beyond full scale "
                                f"({over['over_range']:.1%} of them past it): the float data is unnormalised or "
                                "damaged; re-export it scaled to [-1, 1]", over)
        x = x - x.mean()  # a DC offset is not speech
        peak = float(np.max(np.abs(x)))
        if peak < SILENCE_PEAK:
            return self.failure(f"silent: peak level {20 * np.log10(max(peak, 1e-12)):.0f} dBFS "
                                f"(below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)", duration)
        return speech_signals(x, rate, over["over_range"])
