"""The optical geometry a model is trained for, and how it compares with a bench's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["OpticalGeometry"]


@dataclass(frozen=True)
class OpticalGeometry:
    """Everything about the light path that a trained encoder + decoder depends on."""

    wavelength_nm: float
    pitch_um: float
    d1_mm: float
    d2_mm: float
    seed_superpixels: int
    superpixel_px: int
    decoder_px: int
    output_window_px: int
    output_pixels: int
    aperture_mm: float
    grid_px: int  # simulation grid used in training (square)

    @classmethod
    def from_bench(cls, config, grid_px: int | None = None) -> "OpticalGeometry":
        """The geometry of a validated bench file (``optgen.lab.bench.config.BenchConfig``): its light
        path, the twin's beam aperture and simulation grid (or the seed area and 800 px)."""
        path = config.light_path
        twin = config.twin
        aperture = twin.aperture_m * 1e3 if twin is not None else path.seed_m * 1e3
        grid = grid_px if grid_px is not None else (min(twin.grid_shape) if twin is not None else 800)
        return cls(wavelength_nm=config.wavelength_nm, pitch_um=config.encoding_slm.pitch_um,
                   d1_mm=round(path.d1_m * 1e3, 6), d2_mm=round(path.d2_m * 1e3, 6),
                   seed_superpixels=path.seed_superpixels, superpixel_px=path.superpixel_px,
                   decoder_px=path.decoder_px, output_window_px=path.output_window_px,
                   output_pixels=path.output_pixels, aperture_mm=round(aperture, 6), grid_px=int(grid))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OpticalGeometry":
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"model geometry lacks {sorted(missing)}")
        return cls(**{k: data[k] for k in names})

    def differences(self, bench: "OpticalGeometry", rel_tol: float = 1e-3) -> list[str]:
        """What differs between this (trained) geometry and a bench's, ignoring the training grid."""
        out = []
        for f in fields(self):
            if f.name in ("grid_px", "aperture_mm"):
                continue
            mine, theirs = getattr(self, f.name), getattr(bench, f.name)
            if isinstance(mine, float):
                if abs(mine - theirs) > rel_tol * max(abs(mine), abs(theirs), 1e-12):
                    out.append(f"{f.name}: model {mine:g}, bench {theirs:g}")
            elif mine != theirs:
                out.append(f"{f.name}: model {mine}, bench {theirs}")
        return out
