"""The SDK's definition uploads, made fast.

Rendering a definition, the SageMaker SDK uploads four objects per `@step` (the function and its
arguments, each with a metadata file), one after another, each through a new S3 resource and transfer
manager: on real S3 one round trip each. `fast_definition` makes a pipeline's `definition()` (which
`upsert` calls too) send them from a small thread pool through one S3 client as the SDK produces them,
each by `lib.aws.s3_put.QuickPut` (a third of `put_object`'s CPU), and return only once every one has
landed, so nothing names an object that is not there yet. Outside such a call the SDK's own upload runs.
"""

from __future__ import annotations

import contextlib
import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lib.gc_pace import collecting_every

# the collector's pace while a definition is built and rendered: at the default (every 700 objects) its
# full passes over the SDK's imports took a quarter of a 200-model build
DEFINITION_PACE = 100_000
_active = threading.local()  # the uploads of the definition being rendered in this thread
_installed: dict[str, Any] = {}
_install_lock = threading.Lock()


class _Uploads:
    def __init__(self, session: Any, workers: int) -> None:
        self.session, self.workers = session, workers
        self.put: Any = None  # a QuickPut
        self.pool: ThreadPoolExecutor | None = None
        self.futures: list[tuple[str, Future]] = []

    def submit(self, body: bytes | io.BytesIO, s3_uri: str, kms_key: str | None) -> str:
        from sagemaker.s3_utils import parse_s3_url

        if self.put is None:  # one client (thread-safe), made on the first upload
            from botocore.config import Config

            from lib.aws.s3_put import QuickPut

            boto = self.session.boto_session
            self.put = QuickPut(boto.client("s3", config=Config(max_pool_connections=self.workers)),
                                boto.get_credentials())
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sdk-upload")
        bucket, key = parse_s3_url(s3_uri)
        data = body.getvalue() if isinstance(body, io.BytesIO) else bytes(body)
        self.futures.append((s3_uri, self.pool.submit(self.put.put, bucket, key, data, kms_key)))
        return s3_uri

    def wait(self) -> int:
        """Every upload landed (the first failure raised, naming its object); how many there were."""
        try:
            for uri, future in self.futures:
                try:
                    future.result()
                except Exception as exc:
                    raise RuntimeError(f"uploading the step code to {uri} failed: {exc}") from exc
            return len(self.futures)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


def _install() -> None:
    """Route `S3Uploader.upload_bytes` through the active uploads of this thread, if any (once)."""
    with _install_lock:
        if _installed:
            return
        from sagemaker.s3 import S3Uploader

        sdk = S3Uploader.upload_bytes

        def upload_bytes(b, s3_uri, kms_key=None, sagemaker_session=None):  # the SDK's signature
            uploads = getattr(_active, "uploads", None)
            if uploads is None:
                return sdk(b, s3_uri, kms_key=kms_key, sagemaker_session=sagemaker_session)
            return uploads.submit(b, s3_uri, kms_key)

        S3Uploader.upload_bytes = staticmethod(upload_bytes)
        _installed["sdk"] = sdk


def fast_definition(pipeline: Any, session: Any, workers: int = 16) -> Any:
    """``pipeline`` with a `definition()` whose uploads go through one client in parallel."""
    _install()
    rendered = pipeline.definition

    def definition() -> str:
        uploads = _Uploads(session, workers)
        _active.uploads = uploads
        try:
            with collecting_every(DEFINITION_PACE):
                text = rendered()
        except BaseException:
            _active.uploads = None
            with contextlib.suppress(Exception):
                uploads.wait()  # let what is in flight finish before the error goes up
            raise
        _active.uploads = None
        pipeline.uploaded_objects = uploads.wait()
        # how many took QuickPut's way and how many botocore's put_object (after a quick PUT failed)
        pipeline.upload_ways = {"quick": getattr(uploads.put, "quick", 0),
                                "put_object": getattr(uploads.put, "slow", 0)}
        return text

    pipeline.definition = definition  # an instance attribute: `upsert` calls self.definition() too
    return pipeline
