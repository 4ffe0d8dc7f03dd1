"""The true distances d1 (SLM1 -> SLM2) and d2 (SLM2 -> sensor), from how far gratings move a focus.

A grating of period ``P`` turns light by ``theta = asin(lambda / P)``; wherever the light goes after
the grating, its focus moves sideways by ``z tan(theta)``, ``z`` the distance from the grating to
the sensor, whatever the wavefronts (they bend the light the same way with and without the grating).
SLM1 shows a lens that focuses on the sensor, so there is a spot to find:

- d2: SLM2 shows the grating (+ and -, along x and y): the spot moves by d2 tan(theta) each way;
- d1 + d2: SLM1 shows the grating on top of its lens (SLM2 flat): the spot moves by (d1 + d2) tan(theta).

The spots are located in the output plane at the camera's own pitch (the bench file's), turned by the
sensor's rotation; the distance between the + and - spots over 2 tan(theta) is the distance. SLM2's
own wavefront bends the light SLM1 turned where it crosses SLM2 away from the axis: measured before
SLM2's wavefront correction, d1 + d2 carries that error (a few tenths of a per cent), so
``optgen calibrate all`` measures the distances again once the corrections are in force.
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

__all__ = ["Distances", "MAX_DISTANCE_ERROR", "measure_distances", "write_distances_png"]

SHIFT_FRACTION = 0.35         # each grating moves the focus this share of the sensor's smaller half-side
MAX_DISTANCE_ERROR = 0.2      # a distance more than 20 % from the bench file's is not believed


@dataclass
class Distances:
    d1_m: float
    d2_m: float
    nominal_d1_m: float
    nominal_d2_m: float
    spread_m: float                    # largest disagreement between the x and y gratings
    spots_px: np.ndarray               # (8, 2) the spots found: SLM2 +x, -x, +y, -y, then SLM1's
    periods_m: tuple[float, float]     # the gratings' periods on SLM2 and on SLM1

    def to_record(self, base: dict) -> CalibrationRecord:
        return CalibrationRecord(
            **base, results={"d1_m": float(self.d1_m), "d2_m": float(self.d2_m)},
            raw={"spots_px": np.asarray(self.spots_px, dtype=np.float64)},
            residuals={"spread_m": float(self.spread_m)},
            info={"nominal_d1_m": self.nominal_d1_m, "nominal_d2_m": self.nominal_d2_m,
                  "periods_m": list(self.periods_m),
                  "method": "focus displacement by +-x and +-y gratings on SLM2, then on SLM1"})

    @classmethod
    def from_record(cls, record) -> "Distances":
        r, info = record.results, record.info
        return cls(d1_m=float(r["d1_m"]), d2_m=float(r["d2_m"]), nominal_d1_m=float(info.get("nominal_d1_m", np.nan)),
                   nominal_d2_m=float(info.get("nominal_d2_m", np.nan)),
                   spread_m=float(record.residuals.get("spread_m", np.nan)),
                   spots_px=np.asarray(record.raw.get("spots_px", np.zeros((0, 2)))),
                   periods_m=tuple(float(v) for v in info.get("periods_m", (np.nan, np.nan))))


def measure_distances(session, output_to_sensor: np.ndarray | None, *, frames: int = 2) -> Distances:
    """Measure d1 and d2 (module docstring); CalibrationError when the spots cannot be found or the
    distances come out beyond any plausible error of the bench file's."""
    b = session.config.light_path
    shift = SHIFT_FRACTION * min(b.camera_shape) * b.camera_pitch_m / 2.0
    periods = {key: max(3, round(b.wavelength_m * z / shift / b.pitch_m)) * b.pitch_m
               for key, z in ((DECODING, b.d2_m), (ENCODING, b.d1_m + b.d2_m))}
    m = at_camera_pitch(output_to_sensor if output_to_sensor is not None else nominal_output_to_sensor(b),
                        b.camera_pitch_m)
    to_output = np.linalg.inv(m[:, :2])
    lens = lens_phase(b.encoding_shape, b.pitch_m, b.wavelength_m, b.d1_m + b.d2_m)
    scale_px = b.wavelength_m * (b.d1_m + b.d2_m) / b.seed_m / b.camera_pitch_m
    gratings = [(axis, sign) for axis in (1, 0) for sign in (1, -1)]
    spots = []
    with session.power_kept(), session.light():
        for key in (DECODING, ENCODING):
            shape = b.decoding_shape if key == DECODING else b.encoding_shape
            for i, (axis, sign) in enumerate(gratings):
                tilt = sign * grating_phase(shape, b.pitch_m, periods[key], axis)
                if key == DECODING:
                    session.show(encoding=np.mod(lens, 2 * np.pi), decoding=np.mod(tilt, 2 * np.pi))
                else:
                    session.show(encoding=np.mod(lens + tilt, 2 * np.pi), decoding=np.zeros(shape, np.float32))
                if i == 0:
                    session.auto_exposure_dimming(target_fraction=0.5)
                try:
                    spot = find_spot(session.capture(frames), scale_px, f"distances: grating {len(spots) + 1}/8")
                except CalibrationError as exc:
                    raise CalibrationError(
                        f"{exc}; a panel aberration of several waves also blurs the focus away: load the vendor's "
                        f"correction files ([encoding_slm] and [decoding_slm] wavefront_correction) first. The "
                        f"previous calibration stays in force") from None
                spots.append((spot.x, spot.y))
    spots_px = np.asarray(spots)

    def distance(first: int, period: float) -> tuple[float, float]:
        tan = math.tan(math.asin(b.wavelength_m / period))
        moves = []
        for k in (first, first + 2):
            delta = to_output @ (spots_px[k] - spots_px[k + 1])      # metres in the output plane
            moves.append(float(np.hypot(*delta)) / (2.0 * tan))
        return float(np.mean(moves)), abs(moves[0] - moves[1])

    d2, spread2 = distance(0, periods[DECODING])
    total, spread_total = distance(4, periods[ENCODING])
    d1 = total - d2
    for name, value, nominal in (("d1", d1, b.d1_m), ("d2", d2, b.d2_m)):
        if not (abs(value - nominal) <= MAX_DISTANCE_ERROR * nominal):
            raise CalibrationError(
                f"distances: {name} comes out at {value * 1e3:.1f} mm, the bench file says {nominal * 1e3:.1f} mm; "
                f"check [geometry] d1_mm, d2_mm, [camera] pitch_um and [encoding_slm]/[decoding_slm] pitch_um. "
                f"The previous calibration stays in force")
    return Distances(d1_m=d1, d2_m=d2, nominal_d1_m=b.d1_m, nominal_d2_m=b.d2_m,
                     spread_m=max(spread2, spread_total), spots_px=spots_px,
                     periods_m=(periods[DECODING], periods[ENCODING]))


def write_distances_png(path, d: Distances, camera_shape: tuple[int, int]) -> None:
    """The eight focal spots on the sensor (SLM2's gratings blue, SLM1's red), joined pairwise, and
    the distances they give against the bench file's."""
    import cv2

    rows, cols = camera_shape
    zoom = 640.0 / max(rows, cols)
    img = np.full((int(rows * zoom) + 70, int(cols * zoom) + 20, 3), 255, np.uint8)
    cv2.rectangle(img, (10, 10), (10 + int(cols * zoom), 10 + int(rows * zoom)), (0, 0, 0), 1)
    for k, colour, radius, fill in ((0, (200, 90, 20), 9, 2), (4, (40, 40, 220), 4, -1)):   # rings, dots
        pts = [(10 + int(round(x * zoom)), 10 + int(round(y * zoom))) for x, y in d.spots_px[k:k + 4]]
        for a, b in ((0, 1), (2, 3)):
            cv2.line(img, pts[a], pts[b], colour, 1, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, radius, colour, fill, cv2.LINE_AA)
    text = (f"d1 {d.d1_m * 1e3:.3f} mm (bench file {d.nominal_d1_m * 1e3:.1f}), d2 {d.d2_m * 1e3:.3f} mm "
            f"(bench file {d.nominal_d2_m * 1e3:.1f}); x/y disagree by {d.spread_m * 1e3:.3f} mm")
    cv2.putText(img, text, (10, img.shape[0] - 40), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "blue rings: gratings on SLM2 (d2); red dots: on SLM1 (d1 + d2)", (10, img.shape[0] - 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write the PNG")
