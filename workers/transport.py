"""kombu's filesystem transport, made safe for a consumer that polls often."""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    """Publish each message under a temporary name, then rename it into place.

    kombu creates the message file and then writes into it, so a consumer
    polling between the two reads an empty file; Celery's worker dies on
    the JSONDecodeError ("Unrecoverable error"). Consumers only take files
    ending in ".<queue>.msg", so they never see the ".part" file, and a
    rename within one folder is atomic.
    """

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        with open(partial, "wb") as f:
            f.write(dumps(payload).encode("utf-8"))
        os.replace(partial, final)


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel
