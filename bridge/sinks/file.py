"""File sink: each table's changes in local files, as JSON lines or Avro object container files.

Files are named by the `path` template (`{table}`, `{date}` and `{hour}` of the UTC wall clock when the file is
started) plus `-NNNN` (the first number not taken yet, so a restart never appends to an old file) and the
format's extension. One file per table is open at a time; a new one starts when the template gives a new
name (the hour or day changed), when the file reached `rotate_bytes`, or after `rotate_interval_s`.

Delivery: at-least-once. `flush()` writes buffered records, then `fsync`s every file written since the last
flush (and, for new files, their folder) before it returns, so a checkpoint never covers unsynced data. After
a crash the newest file of a table may end in a partial line or Avro block; it holds only records after the
checkpoint, which the next run writes again into a new file.
"""

from __future__ import annotations

import io
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

import fastavro
from fastavro.schema import to_parsing_canonical_form

from bridge.codec.avro import decode_value
from bridge.codec.keys import kafka_key
from bridge.errors import ConfigError, FatalError
from bridge.normalize import ChangeEvent
from bridge.sinks.base import Sink, TableEncoding
from bridge.sinks.render import event_view, render

PLACEHOLDERS = ("table", "date", "hour")
EXTENSIONS = {"jsonl": ".jsonl", "avro": ".avro"}
AVRO_BLOCK_BYTES = 1 << 20  # an Avro block is written once this much is buffered (or on flush)


@dataclass(frozen=True)
class FileConfig:
    """Write each table's changes to local files: JSON lines or Avro object container files."""

    path: str = field(
        default="cdc-bridge-out/{table}/{date}/{table}-{hour}",
        metadata={
            "doc": "File name template without extension; `{table}`, `{date}` (YYYY-MM-DD) and `{hour}` (HH, UTC) "
            "are replaced, then `-NNNN` and `.jsonl` / `.avro` appended. Needs `{table}` when several tables."
        },
    )
    format: Literal["jsonl", "avro"] = field(
        default="jsonl",
        metadata={
            "doc": "`jsonl`: one JSON event per line, as the stdout sink prints it (without `topic`); "
            "`avro`: Avro object container files."
        },
    )
    avro_codec: Literal["null", "deflate"] = field(
        default="null", metadata={"doc": "Block compression of Avro files (`format: avro`)."}
    )
    rotate_bytes: int = field(
        default=134217728, metadata={"doc": "Start a new file once the current one has this many bytes; 0: never."}
    )
    rotate_interval_s: float = field(
        default=3600.0, metadata={"doc": "Start a new file once the current one is this old, in seconds; 0: never."}
    )


class _OpenFile:
    """One file being written: its handle, size and (Avro) the records not yet written as a block."""

    def __init__(self, stem: str, path: Path, handle: BinaryIO, started: float) -> None:
        self.stem = stem
        self.path = path
        self.handle = handle
        self.started = started
        self.size = 0
        self.block: list[bytes] = []
        self.block_bytes = 0
        self.dirty = False
        self.new = True
        self.sync_marker = b""


class FileSink(Sink):
    """Writes JSON lines or Avro container files, one open file per table; see the module docstring."""

    Config = FileConfig

    @classmethod
    def check_config(cls, config: FileConfig, tables: Sequence[str]) -> list[tuple[str, str]]:
        from bridge.config import check_template

        problem = check_template(config.path, PLACEHOLDERS)
        if problem:
            return [("path", problem)]
        if len(tables) > 1 and "{table}" not in config.path:
            return [("path", f"template {config.path!r} needs {{table}}: several tables would share one file")]
        if config.path.endswith((".jsonl", ".json", ".avro")):
            return [("path", f"template {config.path!r}: leave out the extension, the sink adds it")]
        if not config.path.strip() or config.path.endswith(("/", os.sep)):
            return [("path", f"template {config.path!r} must name a file, not a folder")]
        return []

    def __init__(self, config: FileConfig, tables: dict[str, TableEncoding]) -> None:
        super().__init__(config, tables)
        self.files: dict[str, _OpenFile] = {}
        self.synced_folders: set[Path] = set()
        self.clock = time.time  # replaced in tests

    def _render(self, table: str, now: float) -> str:
        moment = datetime.fromtimestamp(now, UTC)
        return self.config.path.format(table=table, date=moment.strftime("%Y-%m-%d"), hour=moment.strftime("%H"))

    def open(self) -> None:
        for table in self.tables:
            folder = Path(self._render(table, self.clock())).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"file sink: cannot create folder {folder} (path): {error.strerror}") from None
            if not os.access(folder, os.W_OK):
                raise ConfigError(f"file sink: folder {folder} (path) is not writable")

    def write(self, events: Sequence[ChangeEvent]) -> None:
        now = self.clock()
        ts_ms = int(now * 1000)
        name = None  # the table whose file is being written
        try:
            for event in events:
                name = event.table
                table = self.tables[event.table]
                value = table.codec.body(event, ts_ms)
                current = self._file_for(event.table, now)
                if self.config.format == "avro":
                    self._append_avro(current, value)
                else:
                    envelope = decode_value(value, table.codec.schema)
                    line = (render(event_view(envelope, kafka_key(event, table.key))) + "\n").encode()
                    current.handle.write(line)
                    current.size += len(line)
                current.dirty = True
        except OSError as error:
            raise FatalError(f"file sink: cannot write {self._where(error, name)}: {_unwritten(error)}") from None

    def _where(self, error: OSError, table: str | None) -> str:
        """The file an OS error is about: the one it names, else the file of `table` being written."""
        if error.filename:
            return str(error.filename)
        current = self.files.get(table) if table is not None else None
        return str(current.path) if current is not None else f"a new file of table {table}"

    def _file_for(self, table: str, now: float) -> _OpenFile:
        current = self.files.get(table)
        stem = self._render(table, now)
        if current is not None and not self._due(current, stem, now):
            return current
        if current is not None:
            self._finish(current, sync=True)
        current = self._start(table, stem, now)
        self.files[table] = current
        return current

    def _due(self, current: _OpenFile, stem: str, now: float) -> bool:
        rotate_bytes, interval = self.config.rotate_bytes, self.config.rotate_interval_s
        return (
            stem != current.stem
            or (rotate_bytes > 0 and current.size + current.block_bytes >= rotate_bytes)
            or (interval > 0 and now - current.started >= interval)
        )

    def _start(self, table: str, stem: str, now: float) -> _OpenFile:
        extension = EXTENSIONS[self.config.format]
        Path(stem).parent.mkdir(parents=True, exist_ok=True)
        number = 0
        while True:
            path = Path(f"{stem}-{number:04d}{extension}")
            try:
                handle = open(path, "xb")  # noqa: SIM115 - kept open across calls, closed in _finish
                break
            except FileExistsError:
                number += 1
        current = _OpenFile(stem, path, handle, now)
        if self.config.format == "avro":
            self._avro_header(current, self.tables[table])
        return current

    def _avro_header(self, current: _OpenFile, table: TableEncoding) -> None:
        current.sync_marker = os.urandom(16)
        meta = {
            "avro.schema": _schema_text(table).encode(),
            "avro.codec": self.config.avro_codec.encode(),
        }
        out = io.BytesIO()
        out.write(b"Obj\x01")
        fastavro.schemaless_writer(out, {"type": "map", "values": "bytes"}, meta)
        out.write(current.sync_marker)
        current.handle.write(out.getvalue())
        current.size += out.tell()

    def _append_avro(self, current: _OpenFile, body: bytes) -> None:
        current.block.append(body)
        current.block_bytes += len(body)
        if current.block_bytes >= AVRO_BLOCK_BYTES:
            self._write_block(current)

    def _write_block(self, current: _OpenFile) -> None:
        if not current.block:
            return
        data = b"".join(current.block)
        if self.config.avro_codec == "deflate":
            compressor = zlib.compressobj(wbits=-15)
            data = compressor.compress(data) + compressor.flush()
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", len(current.block))
        fastavro.schemaless_writer(out, "long", len(data))
        out.write(data)
        out.write(current.sync_marker)
        current.handle.write(out.getvalue())
        current.size += out.tell()
        current.block, current.block_bytes = [], 0

    def _finish(self, current: _OpenFile, sync: bool) -> None:
        self._write_block(current)
        if sync:
            self._sync(current)
        current.handle.close()

    def _sync(self, current: _OpenFile) -> None:
        self._write_block(current)
        current.handle.flush()
        os.fsync(current.handle.fileno())
        current.dirty = False
        if current.new:  # the new directory entry must be durable too
            folder = current.path.parent
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            current.new = False

    def flush(self, timeout: float) -> None:
        for current in self.files.values():
            if current.dirty or current.new:
                try:
                    self._sync(current)
                except OSError as error:
                    where = error.filename or current.path
                    raise FatalError(f"file sink: cannot sync {where}: {_unwritten(error)}") from None

    def close(self) -> None:
        files, self.files = self.files, {}
        for current in files.values():
            try:
                self._finish(current, sync=False)
            except OSError:
                current.handle.close()


def _unwritten(error: OSError) -> str:
    """The OS error of a failed write or sync, and what it means for the checkpoint."""
    return f"{error.strerror or error}; the checkpoint stays before the events not written"


def _schema_text(table: TableEncoding) -> str:
    """The writer schema of `table` as JSON text for the file header."""
    schema_json = getattr(table.codec, "schema_json", None)
    return json.dumps(schema_json) if schema_json is not None else to_parsing_canonical_form(table.codec.schema)
