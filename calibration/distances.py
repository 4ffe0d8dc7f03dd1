"""The true distances d1 (SLM1 -> SLM2) and d2 (SLM2 -> sensor), from how far gratings move a focus.

A grating of period ``P`` turns light by ``theta = asin(lambda / P)``; the focus on the sensor moves
sideways by ``slope * tan(theta)``, where ``slope`` is what the optics after the grating make of an
angle (ray optics, paraxial; the beam's centroid follows its chief ray whatever the wavefronts):

- d2: SLM1 shows a lens that focuses on the sensor, SLM2 a grating (+ and -, along x and y): the
  slope is d2;
- d1: SLM1 shows the grating on top of a lens while SLM2 shows a lens of power ``p`` (focal length
  ``+-K d2``, SLM1's lens chosen so that the light still focuses on the sensor): the slope is
  ``d1 + d2 - d1 d2 (p + p2)``, ``p2`` the power SLM2 itself adds (its panel's defocus and
  astigmatism). The two signs of ``p`` give ``d1 = (slope(-p) - slope(+p)) / (2 d2 p)``: SLM2's own
  power drops out. (Measured without SLM2's lens, d1 + d2 carried ``d1 d2 p2``: 2 mm on the
  realistic twin before the wavefront correction, 0.75 mm after it; decision 0014.) The mean of the
  two slopes gives ``p2``, kept as a figure of SLM2's remaining defocus.

The spots are located in the output plane at the camera's own pitch (the bench file's), turned by the
sensor's rotation; the distance between the + and - spots over 2 tan(theta) is the slope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optgen.calibration.alignment_spots import find_spot
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationError
from optgen.calibration.wavefront import at_camera_pitch, nominal_output_to_sensor
from optgen.drivers.common.patterns import grating_phase, lens_phase
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["Distances", "MAX_DISTANCE_ERROR", "SLM2_LENS_K", "measure_distances", "write_distances_png"]

SHIFT_FRACTION = 0.35         # each grating moves the focus this share of the sensor's smaller half-side
MAX_DISTANCE_ERROR = 0.2      # a distance more than 20 % from the bench file's is not believed
SLM2_LENS_K = 3.0             # SLM2's lenses for d1: focal lengths +-K d2 (a local period of 7-8 pixels
                              # at the beam's edge on the published bench; larger K, less sensitivity)
GRATINGS = ((1, 1), (1, -1), (0, 1), (0, -1))      # (axis, sign): +x, -x, +y, -y


@dataclass
class Distances:
    d1_m: float
    d2_m: float
    nominal_d1_m: float
    nominal_d2_m: float
    spread_m: float                    # largest disagreement between the x and y gratings
    spots_px: np.ndarray               # (12, 2) the spots: SLM2's gratings, then SLM1's with SLM2's lens +p, -p
    periods_m: tuple[float, float]     # the gratings' periods on SLM2 and on SLM1
    slm2_power_xy_per_m: tuple[float, float] = (float("nan"), float("nan"))   # SLM2's own power along x, y

    @property
    def slm2_power_per_m(self) -> float:
        """The power SLM2 adds on its own (1 / focal length), the mean of x and y; 0 where a record
        from before it was measured has none."""
        power = float(np.mean(self.slm2_power_xy_per_m))
        return power if math.isfinite(power) else 0.0

    def to_record(self, base: dict) -> CalibrationRecord:
        return CalibrationRecord(
            **base, results={"d1_m": float(self.d1_m), "d2_m": float(self.d2_m)},
            raw={"spots_px": np.asarray(self.spots_px, dtype=np.float64)},
            residuals={"spread_m": float(self.spread_m)},
            info={"nominal_d1_m": self.nominal_d1_m, "nominal_d2_m": self.nominal_d2_m,
                  "periods_m": list(self.periods_m),
                  "slm2_power_xy_per_m": [float(v) for v in self.slm2_power_xy_per_m],
                  "slm2_lens_focal_d2": SLM2_LENS_K,
                  "method": "focus displacement by +-x and +-y gratings on SLM2 (d2), then on SLM1 with lenses "
                            "of focal length +-K d2 on SLM2 (d1)"})

    @classmethod
    def from_record(cls, record) -> "Distances":
        r, info = record.results, record.info
        return cls(d1_m=float(r["d1_m"]), d2_m=float(r["d2_m"]), nominal_d1_m=float(info.get("nominal_d1_m", np.nan)),
                   nominal_d2_m=float(info.get("nominal_d2_m", np.nan)),
                   spread_m=float(record.residuals.get("spread_m", np.nan)),
                   spots_px=np.asarray(record.raw.get("spots_px", np.zeros((0, 2)))),
                   periods_m=tuple(float(v) for v in info.get("periods_m", (np.nan, np.nan))),
                   slm2_power_xy_per_m=tuple(float(v) for v in info.get("slm2_power_xy_per_m", (np.nan, np.nan))))


def measure_distances(session, output_to_sensor: np.ndarray | None, *, frames: int = 2) -> Distances:
    """Measure d1 and d2 (module docstring); CalibrationError when the spots cannot be found or the
    distances come out beyond any plausible error of the bench file's."""
    b = session.config.light_path
    d1, d2 = b.d1_m, b.d2_m
    shift = SHIFT_FRACTION * min(b.camera_shape) * b.camera_pitch_m / 2.0
    largest_slope = d1 * (1.0 + 1.0 / SLM2_LENS_K) + d2          # with SLM2's diverging lens
    periods = {key: max(3, round(b.wavelength_m * z / shift / b.pitch_m)) * b.pitch_m
               for key, z in ((DECODING, d2), (ENCODING, largest_slope))}
    m = at_camera_pitch(output_to_sensor if output_to_sensor is not None else nominal_output_to_sensor(b),
                        b.camera_pitch_m)
    to_output = np.linalg.inv(m[:, :2])
    scale_px = b.wavelength_m * (d1 + d2) / b.seed_m / b.camera_pitch_m
    powers = (1.0 / (SLM2_LENS_K * d2), -1.0 / (SLM2_LENS_K * d2))
    setups = [(np.mod(lens_phase(b.encoding_shape, b.pitch_m, b.wavelength_m, d1 + d2), 2 * np.pi), None, DECODING)]
    for p in powers:        # SLM1's lens focuses, through SLM2's lens of power p, on the sensor
        focus_after_slm2 = 1.0 / (1.0 / d2 - p)
        setups.append((lens_phase(b.encoding_shape, b.pitch_m, b.wavelength_m, d1 + focus_after_slm2),
                       np.mod(lens_phase(b.decoding_shape, b.pitch_m, b.wavelength_m, 1.0 / p), 2 * np.pi), ENCODING))
    spots = []
    with session.power_kept(), session.light():
        for encoding, decoding, grating_on in setups:
            for i, (axis, sign) in enumerate(GRATINGS):
                if grating_on == DECODING:
                    tilt = sign * grating_phase(b.decoding_shape, b.pitch_m, periods[DECODING], axis)
                    session.show(encoding=encoding, decoding=np.mod(tilt, 2 * np.pi))
                else:
                    tilt = sign * grating_phase(b.encoding_shape, b.pitch_m, periods[ENCODING], axis)
                    session.show(encoding=np.mod(encoding + tilt, 2 * np.pi), decoding=decoding)
                if i == 0:
                    session.auto_exposure_dimming(target_fraction=0.5)
                try:
                    spot = find_spot(session.capture(frames), scale_px,
                                     f"distances: grating {len(spots) + 1}/{4 * len(setups)}")
                except CalibrationError as exc:
                    raise CalibrationError(
                        f"{exc}; a panel aberration of several waves also blurs the focus away: load the vendor's "
                        f"correction files ([encoding_slm] and [decoding_slm] wavefront_correction) first. The "
                        f"previous calibration stays in force") from None
                spots.append((spot.x, spot.y))
    spots_px = np.asarray(spots)

    def slopes(first: int, period: float) -> np.ndarray:
        """The x and y gratings' slopes (metres of focus movement per unit tan(theta))."""
        tan = math.tan(math.asin(b.wavelength_m / period))
        return np.array([float(np.hypot(*(to_output @ (spots_px[k] - spots_px[k + 1])))) / (2.0 * tan)
                         for k in (first, first + 2)])

    d2_xy = slopes(0, periods[DECODING])
    converging, diverging = slopes(4, periods[ENCODING]), slopes(8, periods[ENCODING])
    d1_xy = (diverging - converging) / (2.0 * d2_xy * powers[0])
    d1_m, d2_m = float(np.mean(d1_xy)), float(np.mean(d2_xy))
    slm2_power = (d1_xy + d2_xy - (converging + diverging) / 2.0) / (d1_xy * d2_xy)
    for name, value, nominal in (("d1", d1_m, b.d1_m), ("d2", d2_m, b.d2_m)):
        if not (abs(value - nominal) <= MAX_DISTANCE_ERROR * nominal):
            raise CalibrationError(
                f"distances: {name} comes out at {value * 1e3:.1f} mm, the bench file says {nominal * 1e3:.1f} mm; "
                f"check [geometry] d1_mm, d2_mm, [camera] pitch_um and [encoding_slm]/[decoding_slm] pitch_um. "
                f"The previous calibration stays in force")
    spread = max(float(np.ptp(d1_xy)), float(np.ptp(d2_xy)))
    return Distances(d1_m=d1_m, d2_m=d2_m, nominal_d1_m=b.d1_m, nominal_d2_m=b.d2_m, spread_m=spread,
                     spots_px=spots_px, periods_m=(periods[DECODING], periods[ENCODING]),
                     slm2_power_xy_per_m=(float(slm2_power[0]), float(slm2_power[1])))


def write_distances_png(path, d: Distances, camera_shape: tuple[int, int]) -> None:
    """The focal spots on the sensor (SLM2's gratings blue; SLM1's red with SLM2's converging lens,
    green with its diverging one), joined pairwise, and the distances they give against the bench file's."""
    import cv2

    rows, cols = camera_shape
    zoom = 640.0 / max(rows, cols)
    img = np.full((int(rows * zoom) + 70, int(cols * zoom) + 20, 3), 255, np.uint8)
    cv2.rectangle(img, (10, 10), (10 + int(cols * zoom), 10 + int(rows * zoom)), (0, 0, 0), 1)
    styles = ((200, 90, 20), 9, 2), ((40, 40, 220), 4, -1), ((40, 160, 40), 6, 1)     # BGR colour, radius, fill
    for k, (colour, radius, fill) in zip(range(0, len(d.spots_px) - 3, 4), styles):
        pts = [(10 + int(round(x * zoom)), 10 + int(round(y * zoom))) for x, y in d.spots_px[k:k + 4]]
        for a, b in ((0, 1), (2, 3)):
            cv2.line(img, pts[a], pts[b], colour, 1, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, radius, colour, fill, cv2.LINE_AA)
    text = (f"d1 {d.d1_m * 1e3:.3f} mm (bench file {d.nominal_d1_m * 1e3:.1f}), d2 {d.d2_m * 1e3:.3f} mm "
            f"(bench file {d.nominal_d2_m * 1e3:.1f}); x/y disagree by {d.spread_m * 1e3:.3f} mm")
    cv2.putText(img, text, (10, img.shape[0] - 40), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "blue: gratings on SLM2 (d2); red, green: on SLM1 with SLM2 showing a lens of +, - focus (d1)",
                (10, img.shape[0] - 18), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the PNG")
