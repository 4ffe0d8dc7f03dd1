"""optgen's bluesky runs into a Tiled server (issue 23, item 3; decision 0025).

    client = tiled_client("http://tiled.lab:8000", api_key=...)     # refused here: wrong key, no server
    link = send_runs_to_tiled(RE, devices, client, documents_dir="runs")
    RE(plans.generate(devices, 20))
    link.last.summary()        # "run 3f2a...: 21 of 21 frames in Tiled at http://..."

bluesky's ``TiledWriter`` writes each run into the server: the start document (with the bench
file, calibration ids and device snapshot of ``optgen.lab.bluesky.metadata.bench_metadata``), the
events' readings as a table, and the camera's frames as *external* HDF5 resources - the server
reads the frame files where the camera wrote them (it must be allowed to: ``tiled serve ... -r
FRAMES_DIR``), nothing is copied. Frames and readings are sent ``batch_size`` frames at a time
(default 20: two requests per frame cost the plan most of its speed; a batch costs about what one
frame did) and the rest at the run's end; ``batch_size=1`` sends each as it comes. What reached
the server is counted batch by batch (:class:`Delivery`). The writes run on a thread of their own:
the RunEngine hands each document over and goes on, so a slow or vanished server never holds the
plan (and the laser) up; :meth:`TiledRuns.wait` / :meth:`TiledRuns.detach` wait, bounded, for it,
and so does the process's end (a script that ends after ``RE(...)``, a queue server's worker whose
environment closes): at most ``EXIT_WAIT_S``, then an ERROR says what did not reach the server.

A Tiled server is a place the data goes *after* the bench: it never stops a run.

- Before a plan runs (each ``RE(...)`` call), the server is asked once, bounded: a wrong API key
  (:class:`TiledRefused`) or no server (:class:`TiledUnreachable`) is raised there, before the
  plan's first message, so no light is spent on a run the server would not take.
- A write that fails during a run (the server went away, refused a document) is caught here, not
  raised into the RunEngine (where it would abort the run): the frames stay in the camera's HDF5
  files, every document of the run is in a local JSON-lines file (``documents_dir``), nothing more is
  sent for that run, and the operator gets one WARNING naming the error at the failure and one
  ERROR at the run's end saying how many frames did not reach the server, where they are and how
  to send them later (:func:`send_documents`). :attr:`TiledRuns.deliveries` keeps the record.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import util as _process_exit
from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["Delivery", "TiledRefused", "TiledRuns", "TiledUnreachable", "send_documents", "send_runs_to_tiled",
           "send_runs_to_tiled_from_environment", "tiled_client"]

log = logging.getLogger("optgen.bluesky")

CHECK_TIMEOUT_S = 10.0       # one bounded request before each RE(...) call
BATCH_SIZE = 20              # frames (and event rows) per write to the server
# documents waiting for the writer thread before a run stops sending (a slow or hung server): about
# 1 kB each, so the backlog stays in the tens of MB however long the run
MAX_BACKLOG = 20_000
EXIT_WAIT_S = 30.0           # at the process's end, how long the writer may take to send what it holds

# how a lab points optgen at its server without code (a queue server's worker, a startup script)
URI_VARIABLE = "OPTGEN_TILED_URI"               # e.g. http://tiled.lab:8000
DOCUMENTS_VARIABLE = "OPTGEN_TILED_DOCUMENTS"   # the local copy of each run's documents (default bluesky-documents)
# the API key: Tiled's own TILED_API_KEY


class TiledUnreachable(OptgenError):
    """No Tiled server answers at the address (or it answered with an error that is not about the key)."""


class TiledRefused(OptgenError):
    """The Tiled server refused the API key (HTTP 401 / 403)."""


def tiled_writer_class():
    """bluesky's TiledWriter: from bluesky-tiled-plugins (where bluesky >= 1.16 keeps it), else from bluesky."""
    try:
        from bluesky_tiled_plugins import TiledWriter
    except ImportError:
        from bluesky.callbacks.tiled_writer import TiledWriter  # bluesky < 1.16 ships its own
    return TiledWriter


def _require_tiled():
    try:
        import tiled.client  # noqa: F401
        tiled_writer_class()
    except ImportError as exc:
        raise OptgenError(f"runs into Tiled need the Tiled client and bluesky's TiledWriter ({exc}); install "
                          f"them: pip install 'tiled[client]>=0.2' bluesky-tiled-plugins") from None


def _refusal(uri: str, status: int, detail: str) -> TiledRefused:
    return TiledRefused(f"the Tiled server at {uri} refused the API key (HTTP {status}: {detail}); give the key "
                        f"its operator set (tiled serve --api-key, or TILED_SINGLE_USER_API_KEY on the server) "
                        f"as api_key= or in the environment variable TILED_API_KEY")


def tiled_client(uri: str, api_key: str | None = None, *, timeout_s: float = CHECK_TIMEOUT_S):
    """A Tiled client for the server at ``uri``, its API key checked.

    Parameters
    ----------
    uri : str
        The server, e.g. ``"http://tiled.lab:8000"`` (a path below it, e.g. ``.../api/v1/metadata/lab``,
        writes the runs into that container).
    api_key : str, optional
        The server's API key; None: the environment variable ``TILED_API_KEY``.
    timeout_s : float, default 10
        How long the first request waits for the server (the check is one bounded request,
        without the client's retries).

    Raises
    ------
    TiledRefused
        The server refused the key.
    TiledUnreachable
        No server answers at ``uri`` within ``timeout_s``, or it answered with another error.
    """
    _require_tiled()
    import os

    from tiled.client import from_uri

    if api_key is None:
        api_key = os.environ.get("TILED_API_KEY") or None
    _probe(uri, api_key, timeout_s)                 # bounded, no retries: a clear error fast
    try:
        return from_uri(uri, api_key=api_key)
    except Exception as exc:                        # the server changed its mind since the probe
        raise _classify(uri, exc) from None


def _probe(uri: str, api_key: str | None, timeout_s: float) -> None:
    """One GET of the server's metadata root at ``uri``: TiledRefused / TiledUnreachable, or None."""
    import httpx

    target = _metadata_uri(uri)
    headers = {"Authorization": f"Apikey {api_key}"} if api_key else {}
    try:
        response = httpx.get(target, headers=headers, timeout=timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise TiledUnreachable(f"no Tiled server answers at {uri} ({type(exc).__name__}: {exc or 'no answer'} "
                               f"within {timeout_s:g} s); is `tiled serve` running there?") from None
    if response.status_code in (401, 403):
        raise _refusal(uri, response.status_code, _detail(response))
    if response.status_code >= 400:
        raise TiledUnreachable(f"the Tiled server at {uri} answered HTTP {response.status_code} "
                               f"({_detail(response)}) to {target}")


def _metadata_uri(uri: str) -> str:
    base = uri.rstrip("/")
    if "/api/v1/" in base + "/":
        return base
    return base + "/api/v1/metadata/"


def _detail(response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:200]
    except Exception:
        return response.text[:200]


def _classify(uri: str, exc: Exception) -> OptgenError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return _refusal(uri, status, str(exc).splitlines()[0])
    return TiledUnreachable(f"the Tiled server at {uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


@dataclass
class Delivery:
    """What of one run reached the Tiled server."""

    run_uid: str
    uri: str
    documents_file: Path | None = None
    frames: int = 0                 # frames the run's StreamDatum documents point to
    frames_sent: int = 0            # of them, registered in Tiled
    frame_files: list[str] = field(default_factory=list)
    error: str | None = None        # the first write that failed (None: all reached the server)
    failed_at: str | None = None    # the document it failed at ("stream_datum", "stop", ...)
    ended: bool = False             # the run's stop document was written (or given up on)

    @property
    def complete(self) -> bool:
        """Every document of a finished run reached the server."""
        return self.ended and self.error is None

    def summary(self) -> str:
        if self.error is None:
            return f"run {self.run_uid}: {self.frames_sent} of {self.frames} frames in Tiled at {self.uri}"
        missing = self.frames - self.frames_sent
        files = ", ".join(self.frame_files) or "none written"
        where = (f"; every document of the run is in {self.documents_file}: send it when the server is back "
                 f"with optgen.lab.bluesky.tiled_data.send_documents(path, client)" if self.documents_file else "")
        return (f"run {self.run_uid}: {missing} of {self.frames} frames did not reach the Tiled server at {self.uri} "
                f"(failed at the {self.failed_at} document: {self.error}); the frames stay on local disk in "
                f"{files}{where}")


class TiledRuns:
    """A RunEngine subscription that writes every run into a Tiled server (:func:`send_runs_to_tiled`).

    ``background`` (default True): the writes run on a thread of the subscription's own, started by
    :meth:`attach`; False: on the RunEngine's thread, as any bluesky callback (the plan waits for
    every write). A server that falls ``max_backlog`` documents behind the run (slow or hung) gets
    no more of that run: the run goes on, its documents and frames stay on local disk, and its
    :class:`Delivery` says what did not reach the server."""

    def __init__(self, client, *, uri: str | None = None, devices=None, documents_dir: str | Path | None = None,
                 batch_size: int = BATCH_SIZE, check_timeout_s: float = CHECK_TIMEOUT_S, background: bool = True,
                 max_backlog: int = MAX_BACKLOG):
        _require_tiled()
        self.client = client
        self.uri = uri or str(getattr(client, "uri", "the Tiled server"))
        self.devices = devices
        self.documents_dir = Path(documents_dir).resolve() if documents_dir is not None else None
        self.check_timeout_s = float(check_timeout_s)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise OptgenError(f"batch_size = {batch_size!r}: expected a whole number >= 1")
        self.batch_size = batch_size
        if isinstance(max_backlog, bool) or not isinstance(max_backlog, int) or max_backlog < 1:
            raise OptgenError(f"max_backlog = {max_backlog!r}: expected a whole number >= 1")
        self.max_backlog = max_backlog
        self._pending: dict[str, list[int]] = {}   # per stream resource: [frames held back by the writer, next index]
        self.deliveries: dict[str, Delivery] = {}
        self._writer = None          # the TiledWriter of the run being written (writer thread)
        self._current: Delivery | None = None      # the run the RunEngine is in (its thread)
        self._file = None
        self._RE = None
        self._token = None
        self.background = bool(background)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._unfinished = 0
        self._at_exit = None

    # --- the RunEngine ----------------------------------------------------------------------
    def attach(self, RE) -> "TiledRuns":
        """Subscribe to ``RE`` and check the server before each of its plans."""
        if self.background and self._thread is None:
            self._thread = threading.Thread(target=self._work, name="optgen-tiled", daemon=True)
            self._thread.start()
            # At the process's end the writer sends what it still holds (bounded) before the daemon thread
            # is stopped: multiprocessing's exit finalizers run at a script's exit (atexit) and also when a
            # forked worker ends (a queue server's RE worker ends with os._exit, where atexit never runs).
            self._at_exit = _process_exit.Finalize(None, self._finish_at_exit, exitpriority=100)
        self._RE = RE
        self._token = RE.subscribe(self)
        RE.preprocessors.append(self._before_plan)
        return self

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Wait, at most ``timeout_s``, until every document so far is written (or given up on);
        True when it is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout_s)

    def detach(self, timeout_s: float = 60.0) -> bool:
        """Unsubscribe, let the writer finish what it has (at most ``timeout_s``) and end its thread;
        True when everything was written or given up on in time."""
        if self._at_exit is not None:
            self._at_exit.cancel()
            self._at_exit = None
        if self._RE is not None:
            self._RE.unsubscribe(self._token)
            if self._before_plan in self._RE.preprocessors:
                self._RE.preprocessors.remove(self._before_plan)
            self._RE = None
        done = self.wait(timeout_s)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s if done else 0.1)
            self._thread = None
        return done

    def _finish_at_exit(self) -> None:
        """The process ends while subscribed: send what the writer holds, at most EXIT_WAIT_S, and say
        what did not make it."""
        self._at_exit = None
        if self.detach(EXIT_WAIT_S):
            return
        where = ", ".join(str(d.documents_file) for d in self.deliveries.values()
                          if not d.complete and d.documents_file is not None)
        log.error("the process ends with %d documents not yet written to the Tiled server at %s (after %g s); "
                  "%s", self._unfinished, self.uri, EXIT_WAIT_S,
                  f"they are in {where}: send them with optgen.lab.bluesky.tiled_data.send_documents(path, client)"
                  if where else "no local copy was kept (documents_dir=None)")

    @property
    def last(self) -> Delivery | None:
        """The latest run's delivery (None before the first run)."""
        return next(reversed(self.deliveries.values()), None)

    def _before_plan(self, plan):
        """A RunEngine preprocessor: runs when ``RE(plan)`` is called, before the plan's first message.
        Checks the server (TiledRefused / TiledUnreachable) and adds the bench facts to a start
        document that has none (plans other than optgen's own)."""
        _probe(self.uri, self._api_key(), self.check_timeout_s)
        if self.devices is None:
            return plan
        return self._with_bench_metadata(plan)

    def _with_bench_metadata(self, plan):
        from bluesky.preprocessors import msg_mutator

        from optgen.lab.bluesky.metadata import bench_metadata

        def add(msg):
            if msg.command == "open_run" and "optgen" not in msg.kwargs:
                msg = msg._replace(kwargs={**bench_metadata(self.devices), **msg.kwargs})
            return msg

        return msg_mutator(plan, add)

    def _api_key(self) -> str | None:
        return getattr(self.client.context, "api_key", None)

    # --- the documents: the RunEngine's side ---------------------------------------------------
    def __call__(self, name: str, doc: dict) -> None:
        """On the RunEngine's thread: keep the document locally, count its frames, hand it to the writer."""
        if name == "start":
            self._begin(doc)
        delivery = self._current
        if delivery is None:             # a document of a run that began before this subscription
            return
        self._keep_locally(name, doc)
        self._count(name, doc, delivery)
        if name == "stop":
            self._current = None
            if self._file is not None:
                self._file.close()
                self._file = None
        if self._thread is None:
            self._write(name, doc, delivery)
            return
        with self._idle:
            if delivery.error is None and self._unfinished >= self.max_backlog:
                delivery.error = (f"the server fell {self._unfinished} documents behind the run (slow or hung); "
                                  f"the rest of the run was not sent")
                delivery.failed_at = name
                log.warning("run %s: the Tiled server at %s fell %d documents behind; the rest of the run is not "
                            "sent, its frames and documents stay on local disk", delivery.run_uid, self.uri,
                            self._unfinished)
            if delivery.error is not None and name != "stop":
                return                   # given up on: kept locally, nothing more of it held in memory
            self._unfinished += 1
        self._queue.put((name, doc, delivery))

    # --- the documents: the writer's side (its own thread, or the caller's) ---------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._write(*item)
            except Exception:            # pragma: no cover - _write catches the writer's errors itself
                log.exception("the Tiled writer thread")
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def _write(self, name: str, doc: dict, delivery: Delivery) -> None:
        if name == "start":
            self._writer, self._pending = None, {}
        if delivery.error is None:
            try:
                if self._writer is None:     # one per run: a failed run leaves nothing behind in the next
                    self._writer = tiled_writer_class()(self.client, batch_size=self.batch_size)
                self._writer(name, doc)
            except Exception as exc:     # never into the RunEngine: the run goes on, its data on disk
                delivery.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
                delivery.failed_at = name
                log.warning("run %s: the Tiled server at %s took no more of this run (at its %s document: %s); "
                            "the run goes on, its frames and documents stay on local disk",
                            delivery.run_uid, self.uri, name, delivery.error)
            else:
                self._count_sent(name, doc, delivery)
        if name == "stop":
            self._end(delivery)

    def _begin(self, doc: dict) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        delivery = Delivery(run_uid=doc["uid"], uri=self.uri)
        if self.documents_dir is not None:
            self.documents_dir.mkdir(parents=True, exist_ok=True)
            delivery.documents_file = self.documents_dir / f"{doc['uid']}.jsonl"
            self._file = open(delivery.documents_file, "w", encoding="utf-8")
        self.deliveries[delivery.run_uid] = self._current = delivery

    def _keep_locally(self, name: str, doc: dict) -> None:
        if self._file is not None:
            self._file.write(json.dumps([name, doc], default=_plain) + "\n")
            self._file.flush()

    def _count(self, name: str, doc: dict, delivery: Delivery) -> None:
        if name == "stream_resource":
            path = str(doc.get("uri", "")).removeprefix("file://localhost").removeprefix("file://")
            if path and path not in delivery.frame_files:
                delivery.frame_files.append(path)
        elif name == "stream_datum":
            delivery.frames += _rows(doc)

    def _count_sent(self, name: str, doc: dict, delivery: Delivery) -> None:
        """After the writer took ``doc``: the frames it has sent to the server by now. bluesky's
        TiledWriter holds a resource's StreamDatums back until ``batch_size`` consecutive frames are
        there (or the run ends) and writes at once a pair that is not consecutive; the same rule here."""
        if name == "stop":
            delivery.frames_sent = delivery.frames
            return
        if name != "stream_datum":
            return
        rows, start, stop = _rows(doc), doc["indices"]["start"], doc["indices"]["stop"]
        if self.batch_size <= 1:
            delivery.frames_sent += rows
            return
        held = self._pending.get(doc["stream_resource"])
        if held is None or held[0] == 0:
            self._pending[doc["stream_resource"]] = [rows, stop]
        elif held[1] != start:                       # not consecutive: both written now
            delivery.frames_sent += held[0] + rows
            self._pending[doc["stream_resource"]] = [0, stop]
        elif held[0] + rows >= self.batch_size:
            delivery.frames_sent += held[0] + rows
            self._pending[doc["stream_resource"]] = [0, stop]
        else:
            self._pending[doc["stream_resource"]] = [held[0] + rows, stop]

    def _end(self, delivery: Delivery) -> None:
        delivery.ended = True
        self._writer = None
        if delivery.error is None:
            log.info("%s", delivery.summary())
        else:
            log.error("%s", delivery.summary())


def _rows(stream_datum: dict) -> int:
    indices = stream_datum.get("indices", {})
    return int(indices.get("stop", 0)) - int(indices.get("start", 0))


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def send_runs_to_tiled(RE, devices=None, client=None, *, uri: str | None = None, api_key: str | None = None,
                       documents_dir: str | Path | None = "bluesky-documents",
                       batch_size: int = BATCH_SIZE, max_backlog: int = MAX_BACKLOG) -> TiledRuns:
    """Write every run of ``RE`` into a Tiled server from now on.

    Parameters
    ----------
    RE : bluesky.RunEngine
    devices : OptgenBench, optional
        From ``optgen.bluesky.devices(bench)``: a plan whose start document lacks the bench facts
        (not one of optgen's plans, e.g. ``bluesky.plans.count``) gets them added.
    client : tiled client, optional
        From :func:`tiled_client`; or give ``uri`` (and ``api_key``) and it is made here.
    documents_dir : str or Path or None, default "bluesky-documents"
        Where every run's documents are also kept, one JSON-lines file per run (what to send later
        when the server was away); None: nowhere.
    batch_size : int, default 20
        Frames (and event rows) per write; 1: each frame as it comes, at a cost in frames/s.
    max_backlog : int, default 20000
        Documents a slow or hung server may fall behind a run before the rest of that run is not
        sent (it stays on local disk; the run's delivery says so).

    Raises
    ------
    TiledRefused, TiledUnreachable
        From :func:`tiled_client`, before anything is subscribed.
    """
    if client is None:
        if uri is None:
            raise OptgenError("send_runs_to_tiled: give a client (tiled_client(uri, api_key)) or uri=")
        client = tiled_client(uri, api_key)
    return TiledRuns(client, uri=uri, devices=devices, documents_dir=documents_dir, batch_size=batch_size,
                     max_backlog=max_backlog).attach(RE)


def send_runs_to_tiled_from_environment(RE, devices=None) -> TiledRuns | None:
    """:func:`send_runs_to_tiled` to the server the environment names, or None where it names none.

    ``OPTGEN_TILED_URI`` the server, ``TILED_API_KEY`` its key, ``OPTGEN_TILED_DOCUMENTS`` where the
    runs' documents are kept as well (default ``bluesky-documents``; empty: nowhere). A server named
    but refusing the key or not answering raises here (TiledRefused / TiledUnreachable), before any run.
    """
    import os

    uri = os.environ.get(URI_VARIABLE, "").strip()
    if not uri:
        return None
    documents = os.environ.get(DOCUMENTS_VARIABLE, "bluesky-documents").strip() or None
    return send_runs_to_tiled(RE, devices, uri=uri, api_key=os.environ.get("TILED_API_KEY") or None,
                              documents_dir=documents)


def send_documents(documents_file: str | Path, client) -> Delivery:
    """Send a run kept in a JSON-lines file (``documents_dir``) into Tiled, e.g. after the server was
    away during the run. A part of the run that reached the server before is replaced.

    The frame files the documents point to must still be where the camera wrote them."""
    _require_tiled()
    lines = Path(documents_file).read_text(encoding="utf-8").splitlines()
    documents = [json.loads(line) for line in lines if line.strip()]
    if not documents or documents[0][0] != "start":
        raise OptgenError(f"{documents_file}: not a run's documents (the first line is not its start document)")
    uid = documents[0][1]["uid"]
    if uid in client:      # the part that reached the server: its event table goes, the frame files stay
        client.delete_contents(uid, recursive=True, external_only=False)
    runs = TiledRuns(client, documents_dir=None)
    started = time.monotonic()
    for name, doc in documents:
        runs(name, doc)
    delivery = runs.deliveries[uid]
    log.debug("sent %s in %.1f s", documents_file, time.monotonic() - started)
    return delivery
