"""kombu's filesystem transport, made safe for a consumer that polls often, making its folders."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
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

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        # Made by the first process to open a channel on them (a worker, beat,
        # Flower, a publisher), not by importing the app: kombu expects them.
        for folder in (self.data_folder_in, self.data_folder_out, self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        with open(partial, "wb") as f:
            f.write(dumps(payload).encode("utf-8"))
        os.replace(partial, final)


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel
