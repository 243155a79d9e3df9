"""One block of neural-signal samples, made with vectorised NumPy.

A block is ``BLOCK_SAMPLES`` time steps of one device's 256 channels (262,144 rows).
The voltage on each channel is the sum of

* Gaussian noise (each channel has its own noise level, 5 to 15 µV),
* a 10 Hz local field potential shared by all channels, each with its own phase,
* spikes: exponential amplitudes (mean 60 µV) and normally distributed widths
  (0.8 ± 0.2 ms), fired more often when the cursor moves in the channel's preferred
  direction (cosine tuning, the classic motor-cortex model a decoder can learn),
* artifacts: each event is, with probability 0.05, a large positive artifact (mean
  400 µV, four times wider) instead of a spike; ``quality`` drops to 0.1 during one.

Every block draws from its own seeded random stream, so the data depend only on the
seed, never on how the output is chunked or how many files it is written to.
Spikes that would run past the end of a block are cut there (at most 1.6 ms of the
1024 x 0.1 ms = 102.4 ms block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralake.datagen.cursor import CursorPath

SAMPLE_RATE_HZ = 10_000
SAMPLE_PERIOD_US = 1_000_000 // SAMPLE_RATE_HZ  # 100 µs
CHANNELS = 256
BLOCK_SAMPLES = 1024  # time steps per block: 1024 x 256 channels = 262,144 rows

FIRING_RATE_HZ = 20.0  # mean spikes per second per channel
TUNING_DEPTH = 0.8  # firing rate swings by +-80 % with the cursor's direction
SPIKE_AMPLITUDE_UV = 60.0  # mean of the exponential amplitude distribution
SPIKE_WIDTH_SAMPLES = (8.0, 2.0)  # mean and standard deviation: 0.8 +- 0.2 ms
ARTIFACT_PROBABILITY = 0.05
ARTIFACT_AMPLITUDE_UV = 400.0
ARTIFACT_WIDTH_FACTOR = 4
ARTIFACT_QUALITY = 0.1
LFP_HZ = 10.0
LFP_AMPLITUDE_UV = 20.0


@dataclass(frozen=True)
class ChannelMap:
    """What is fixed about a device's channels: noise, tuning, baseline quality."""

    noise_uv: np.ndarray  # (channels,) float32
    preferred_cos: np.ndarray  # cos and sin of each channel's preferred direction
    preferred_sin: np.ndarray
    lfp_cos: np.ndarray  # LFP amplitude x cos/sin of each channel's phase
    lfp_sin: np.ndarray
    quality: np.ndarray  # (channels,) float32, 0.7..1.0

    @classmethod
    def random(cls, rng: np.random.Generator, channels: int = CHANNELS) -> ChannelMap:
        direction = rng.uniform(0, 2 * np.pi, channels)
        phase = rng.uniform(0, 2 * np.pi, channels)
        f32 = np.float32
        return cls(
            noise_uv=rng.uniform(5, 15, channels).astype(f32),
            preferred_cos=np.cos(direction).astype(f32),
            preferred_sin=np.sin(direction).astype(f32),
            lfp_cos=(LFP_AMPLITUDE_UV * np.cos(phase)).astype(f32),
            lfp_sin=(LFP_AMPLITUDE_UV * np.sin(phase)).astype(f32),
            quality=rng.uniform(0.7, 1.0, channels).astype(f32),
        )


@dataclass(frozen=True)
class SignalBlock:
    """Arrays of shape (time steps, channels); row-major order = timestamp, then channel."""

    voltage_uv: np.ndarray
    spike: np.ndarray
    quality: np.ndarray


def signal_block(
    rng: np.random.Generator,
    channels: ChannelMap,
    cursor: CursorPath,
    first_sample: int,
    samples: int,
) -> SignalBlock:
    """Simulate ``samples`` time steps starting at sample number ``first_sample``."""
    t_s = (first_sample + np.arange(samples)) / SAMPLE_RATE_HZ
    n_channels = channels.noise_uv.size

    # Firing probability per (time step, channel): cos(direction - preferred) is
    # vx*cos(p) + vy*sin(p), an outer product instead of 1M cosines.
    vx, vy = cursor.velocity(t_s)
    ux = (vx / cursor.max_speed).astype(np.float32)
    uy = (vy / cursor.max_speed).astype(np.float32)
    tuning = np.outer(ux, channels.preferred_cos) + np.outer(uy, channels.preferred_sin)
    probability = (FIRING_RATE_HZ / SAMPLE_RATE_HZ) * (1 + TUNING_DEPTH * tuning)
    events = rng.random((samples, n_channels), dtype=np.float32) < probability

    voltage = rng.standard_normal((samples, n_channels), dtype=np.float32)
    voltage *= channels.noise_uv
    lfp = 2 * np.pi * LFP_HZ * t_s
    voltage += np.outer(np.sin(lfp).astype(np.float32), channels.lfp_cos)
    voltage += np.outer(np.cos(lfp).astype(np.float32), channels.lfp_sin)

    step, channel = np.nonzero(events)
    n_events = step.size
    artifact = rng.random(n_events) < ARTIFACT_PROBABILITY
    amplitude = rng.exponential(SPIKE_AMPLITUDE_UV, n_events)
    amplitude[artifact] = -rng.exponential(ARTIFACT_AMPLITUDE_UV, int(artifact.sum()))
    width = np.clip(np.rint(rng.normal(*SPIKE_WIDTH_SAMPLES, n_events)), 3, 16).astype(np.int64)
    width[artifact] *= ARTIFACT_WIDTH_FACTOR

    quality = np.broadcast_to(channels.quality, (samples, n_channels)).copy()
    flat_voltage = voltage.reshape(-1)
    flat_quality = quality.reshape(-1)
    for offset in range(int(width.max(initial=0))):
        live = (offset < width) & (step + offset < samples)
        rows = (step[live] + offset) * n_channels + channel[live]
        # A half sine: negative trough for spikes, positive bump for artifacts.
        shape = np.sin(np.pi * (offset + 0.5) / width[live])
        np.add.at(flat_voltage, rows, (-amplitude[live] * shape).astype(np.float32))
        flat_quality[rows[artifact[live]]] = ARTIFACT_QUALITY

    spike = np.zeros((samples, n_channels), dtype=bool)
    trough = step + width // 2
    real = ~artifact & (trough < samples)
    spike[trough[real], channel[real]] = True
    return SignalBlock(voltage_uv=voltage, spike=spike, quality=quality)
