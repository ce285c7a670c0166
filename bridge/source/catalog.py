"""The tables `discover:` finds: names from `ListTables`, matched by pattern and tag, each with a stream.

A table is found when its name matches one `include` pattern (any name when none is given) and no `exclude`
pattern, it has every tag of `tags` with its value (`ListTagsOfResource`, only read when tags are asked for), and
it has a stream enabled. A table named in `tables:` is never found: its own entry wins. A table that matches but
has no stream is logged once at WARNING and looked at again at the next discovery.

Tag reads are paced (`TAG_CALLS_PER_S`, under DynamoDB's per-account limit of 10 per second); table descriptions
are kept for tables with a stream, so a discovery costs one `ListTables` page per 100 tables, one tag read per
matching table and one `DescribeTable` per matching table not found before.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from bridge.config import Config, DiscoverConfig
from bridge.source.aws_errors import MalformedAnswer, ResourceGone, classify_at_start
from bridge.source.discovery import enabled_stream_arn, table_description

log = logging.getLogger(__name__)
TAG_CALLS_PER_S = 5.0
MAX_PAGES = 10_000  # pages of one listing (100 tables or tags each): far beyond any real account


class TableCatalog:
    """Finds the tables of `discover` with `dynamodb`; `explicit` names the tables of `tables:`."""

    def __init__(
        self,
        discover: DiscoverConfig,
        dynamodb,
        explicit: Iterable[str] = (),
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.discover = discover
        self.dynamodb = dynamodb
        self.explicit = frozenset(explicit)
        self.sleep, self.clock = sleep, clock
        self.arns: dict[str, str] = {}  # table -> its ARN, for tables seen with a stream
        self.warned: set[str] = set()  # tables without a stream, logged once
        self.last_tag_call = -float("inf")

    @classmethod
    def of(cls, config: Config, dynamodb) -> TableCatalog:
        """The catalog of `config`'s `discover` section: it never finds a table named under `tables`."""
        return cls(config.discover, dynamodb, [table.name for table in config.tables])

    def matches(self, name: str) -> bool:
        """`name` matches the patterns (tags aside) and is not a table of `tables:`."""
        include, exclude = self.discover.include, self.discover.exclude
        return (
            name not in self.explicit
            and (not include or any(fnmatch.fnmatchcase(name, pattern) for pattern in include))
            and not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)
        )

    def find(self) -> list[str]:
        """The names of the tables found now, sorted.

        Raises `ConfigError` when a call is denied, `RetriableError` when DynamoDB throttles, fails or answers
        something malformed (nothing is found then: the caller keeps what it had).
        """
        found = []
        for name in self._list_tables():
            if not self.matches(name):
                continue
            arn = self.arns.get(name)
            try:
                if arn is None:
                    arn = self._described(name)
                    if arn is None:
                        continue
                if self.discover.tags and not self._tagged(name, arn):
                    continue
            except ResourceGone:  # deleted since it was listed
                self.arns.pop(name, None)
                continue
            found.append(name)
        return found

    def _list_tables(self) -> list[str]:
        names: list[str] = []
        args: dict = {}
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            answer = self._call("listing tables", self.dynamodb.list_tables, **args)
            page = answer.get("TableNames") if type(answer) is dict else None
            if type(page) is not list or not all(type(name) is str for name in page):
                raise MalformedAnswer("listing tables: the ListTables answer has no `TableNames` list of strings")
            names.extend(page)
            last = answer.get("LastEvaluatedTableName")
            if last is None:
                return sorted(set(names))
            if type(last) is not str or last in seen:
                raise MalformedAnswer(f"listing tables: ListTables paging does not move on ({last!r})")
            seen.add(last)
            args["ExclusiveStartTableName"] = last
        raise MalformedAnswer(f"listing tables: ListTables paging did not end after {MAX_PAGES} pages")

    def _described(self, name: str) -> str | None:
        """The table's ARN when it has a stream enabled; None (logged once) when it has none."""
        table = table_description(self.dynamodb, name, classify_at_start)
        arn = table.get("TableArn")
        if type(arn) is not str or not arn:
            raise MalformedAnswer(f"describing table {name}: the DescribeTable answer has no `TableArn` string")
        if enabled_stream_arn(table, name) is None:
            if name not in self.warned:
                self.warned.add(name)
                log.warning(
                    "table %s matches `discover` but has no stream enabled: it is not replicated; enable a stream "
                    "(NEW_AND_OLD_IMAGES recommended) and it is found at a later discovery",
                    name,
                )
            return None
        self.warned.discard(name)
        self.arns[name] = arn
        return arn

    def _tagged(self, name: str, arn: str) -> bool:
        """The table has every tag of `discover.tags` with its value."""
        tags: dict[str, str] = {}
        args = {"ResourceArn": arn}
        for _ in range(MAX_PAGES):
            wait = self.last_tag_call + 1 / TAG_CALLS_PER_S - self.clock()
            if wait > 0:
                self.sleep(wait)
            self.last_tag_call = self.clock()
            answer = self._call(f"listing the tags of table {name}", self.dynamodb.list_tags_of_resource, **args)
            page = answer.get("Tags", []) if type(answer) is dict else None  # AWS leaves out empty lists
            if type(page) is not list or not all(
                type(tag) is dict and type(tag.get("Key")) is str and type(tag.get("Value")) is str for tag in page
            ):
                raise MalformedAnswer(
                    f"listing the tags of table {name}: the ListTagsOfResource answer has no `Tags` list of "
                    "Key/Value strings"
                )
            tags.update((tag["Key"], tag["Value"]) for tag in page)
            token = answer.get("NextToken")
            if token is None:
                return all(tags.get(key) == value for key, value in self.discover.tags.items())
            if type(token) is not str or token == args.get("NextToken"):
                raise MalformedAnswer(f"listing the tags of table {name}: paging does not move on ({token!r})")
            args["NextToken"] = token
        raise MalformedAnswer(f"listing the tags of table {name}: paging did not end after {MAX_PAGES} pages")

    @staticmethod
    def _call(doing: str, call, **args) -> dict:
        try:
            return call(**args)
        except (ClientError, BotoCoreError) as error:
            raise classify_at_start(error, doing) from error
