"""TableCatalog.find over a scripted DynamoDB client: names by pattern, tags all matching, a stream each; every
page of ListTables and ListTagsOfResource read, malformed answers and AWS errors classified, tag reads paced."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError

from bridge.config import DiscoverConfig
from bridge.errors import ConfigError, RetriableError
from bridge.source.aws_errors import MalformedAnswer
from bridge.source.catalog import TAG_CALLS_PER_S, TableCatalog

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"
UNSCRIPTED = object()


def client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} says no"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class FakeDynamoDB:
    """A DynamoDB client with tables (name -> stream enabled, tags), answering in pages of `page_size` tables
    and `tag_page_size` tags. `answers[method]` and `errors[method]` replace the next answers of a method
    (each item used once, in order); every call is kept in `calls` as (method, arguments)."""

    def __init__(self, page_size: int = 100, tag_page_size: int = 10, clock=None) -> None:
        self.tables: dict[str, dict] = {}
        self.page_size, self.tag_page_size = page_size, tag_page_size
        self.calls: list[tuple[str, dict]] = []
        self.answers: dict[str, list] = {}
        self.errors: dict[str, list[Exception]] = {}
        self.clock = clock  # a FakeTime: each tag call is recorded at its time

    def add(self, name: str, stream: bool = True, **tags: str) -> None:
        self.tables[name] = {"stream": stream, "tags": dict(tags)}

    def _scripted(self, method: str, args: dict):
        self.calls.append((method, args))
        if self.errors.get(method):
            raise self.errors[method].pop(0)
        if self.answers.get(method):
            return self.answers[method].pop(0)
        return UNSCRIPTED

    def list_tables(self, **args) -> dict:
        scripted = self._scripted("list_tables", args)
        if scripted is not UNSCRIPTED:
            return scripted
        names = sorted(self.tables)
        after = args.get("ExclusiveStartTableName")
        if after is not None:
            names = [name for name in names if name > after]
        page = names[: self.page_size]
        answer = {"TableNames": page}
        if len(names) > self.page_size:
            answer["LastEvaluatedTableName"] = page[-1]
        return answer

    def describe_table(self, **args) -> dict:
        scripted = self._scripted("describe_table", args)
        if scripted is not UNSCRIPTED:
            return scripted
        name = args["TableName"]
        if name not in self.tables:
            raise client_error("ResourceNotFoundException", 400, "DescribeTable")
        table = {"TableName": name, "TableArn": ARN + name, "TableStatus": "ACTIVE"}
        if self.tables[name]["stream"]:
            table["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            table["LatestStreamArn"] = f"{ARN}{name}/stream/2026-12-01T00:00:00.000"
        return {"Table": table}

    def list_tags_of_resource(self, **args) -> dict:
        if self.clock is not None:
            args = {**args, "at": self.clock()}
        scripted = self._scripted("list_tags_of_resource", args)
        if scripted is not UNSCRIPTED:
            return scripted
        name = args["ResourceArn"].removeprefix(ARN)
        if name not in self.tables:
            raise client_error("ResourceNotFoundException", 400, "ListTagsOfResource")
        tags = [{"Key": key, "Value": value} for key, value in sorted(self.tables[name]["tags"].items())]
        start = int(args.get("NextToken", "0"))
        answer = {"Tags": tags[start : start + self.tag_page_size]}
        if start + self.tag_page_size < len(tags):
            answer["NextToken"] = str(start + self.tag_page_size)
        return answer

    def called(self, method: str) -> list[dict]:
        return [args for name, args in self.calls if name == method]


class FakeTime:
    """A monotonic clock that only `sleep` moves; the waits asked are kept in `slept`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def catalog(dynamodb: FakeDynamoDB, explicit=(), time: FakeTime | None = None, **discover) -> TableCatalog:
    time = time or FakeTime()
    return TableCatalog(DiscoverConfig(**discover), dynamodb, explicit, sleep=time.sleep, clock=time)


@pytest.fixture
def dynamodb() -> FakeDynamoDB:
    return FakeDynamoDB()


def test_tables_matching_an_include_pattern_are_found_sorted(dynamodb):
    for name in ("orders-2", "orders-1", "users", "orders"):
        dynamodb.add(name)
    assert catalog(dynamodb, include=("orders-*",)).find() == ["orders-1", "orders-2"]


def test_any_of_several_include_patterns_is_enough(dynamodb):
    for name in ("orders-1", "users-a", "users-bb", "audit"):
        dynamodb.add(name)
    assert catalog(dynamodb, include=("orders-*", "users-?")).find() == ["orders-1", "users-a"]


def test_exclude_wins_over_include(dynamodb):
    for name in ("orders-1", "orders-tmp", "orders-2"):
        dynamodb.add(name)
    assert catalog(dynamodb, include=("orders-*",), exclude=("*-tmp", "orders-[2]")).find() == ["orders-1"]


def test_exclude_alone_finds_every_other_table(dynamodb):
    for name in ("a", "b", "scratch-1"):
        dynamodb.add(name)
    assert catalog(dynamodb, exclude=("scratch-*",)).find() == ["a", "b"]


def test_patterns_match_case_sensitively(dynamodb):
    dynamodb.add("Orders-1")
    dynamodb.add("orders-1")
    assert catalog(dynamodb, include=("orders-*",)).find() == ["orders-1"]


def test_a_table_of_tables_is_never_found_nor_described(dynamodb):
    dynamodb.add("orders-1")
    dynamodb.add("orders-2")
    assert catalog(dynamodb, explicit=["orders-1"], include=("orders-*",)).find() == ["orders-2"]
    assert dynamodb.called("describe_table") == [{"TableName": "orders-2"}]


def test_matches_answers_for_names_without_asking_dynamodb():
    names = TableCatalog(DiscoverConfig(include=("orders-*",), exclude=("*-tmp",)), None, ["orders-main"])
    assert names.matches("orders-1")
    assert not names.matches("orders-tmp")
    assert not names.matches("orders-main")
    assert not names.matches("users")


def test_a_table_needs_every_tag_with_its_value(dynamodb):
    dynamodb.add("both", cdc="on", team="sales")
    dynamodb.add("other-value", cdc="on", team="ops")
    dynamodb.add("one-tag", cdc="on")
    dynamodb.add("untagged")
    dynamodb.add("more-tags", cdc="on", team="sales", cost="x")
    assert catalog(dynamodb, tags={"cdc": "on", "team": "sales"}).find() == ["both", "more-tags"]


def test_tags_are_not_read_without_tags_asked_for(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    assert catalog(dynamodb, include=("*",)).find() == ["orders-1"]
    assert dynamodb.called("list_tags_of_resource") == []


def test_tags_are_only_read_for_tables_the_patterns_match(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.add("users", cdc="on")
    assert catalog(dynamodb, include=("orders-*",), tags={"cdc": "on"}).find() == ["orders-1"]
    assert [args["ResourceArn"] for args in dynamodb.called("list_tags_of_resource")] == [ARN + "orders-1"]


def test_every_page_of_list_tables_is_read(dynamodb):
    dynamodb.page_size = 2
    for index in range(5):
        dynamodb.add(f"t{index}")
    assert catalog(dynamodb, include=("t*",)).find() == ["t0", "t1", "t2", "t3", "t4"]
    assert dynamodb.called("list_tables") == [
        {},
        {"ExclusiveStartTableName": "t1"},
        {"ExclusiveStartTableName": "t3"},
    ]


def test_a_tag_found_on_a_later_page_counts(dynamodb):
    dynamodb.tag_page_size = 2
    dynamodb.add("orders-1", a="1", b="2", c="3", zz="wanted")
    assert catalog(dynamodb, tags={"zz": "wanted"}).find() == ["orders-1"]
    assert [args.get("NextToken") for args in dynamodb.called("list_tags_of_resource")] == [None, "2"]


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"TableNames": None},
        {"TableNames": "orders-1"},
        {"TableNames": ["orders-1", 7]},
        {"TableNames": [None]},
        ["orders-1"],
        None,
    ],
    ids=["no-names", "null", "a-string", "a-number-among-names", "a-null-name", "a-list-answer", "no-answer"],
)
def test_a_list_tables_answer_without_a_list_of_names_is_malformed(dynamodb, answer):
    dynamodb.add("orders-1")
    dynamodb.answers["list_tables"] = [answer]
    with pytest.raises(MalformedAnswer, match="listing tables: the ListTables answer has no `TableNames`"):
        catalog(dynamodb, include=("*",)).find()


def test_list_tables_paging_that_repeats_its_page_is_malformed(dynamodb):
    dynamodb.answers["list_tables"] = [
        {"TableNames": ["a"], "LastEvaluatedTableName": "a"},
        {"TableNames": ["a"], "LastEvaluatedTableName": "a"},
    ]
    with pytest.raises(MalformedAnswer, match=r"listing tables: ListTables paging does not move on \('a'\)"):
        catalog(dynamodb, include=("*",)).find()


def test_list_tables_paging_that_goes_round_in_a_circle_ends_malformed(dynamodb):
    following = {None: "a", "a": "b", "b": "a"}  # the page after a is b, after b is a again: never ends

    def list_tables(**args):
        dynamodb.calls.append(("list_tables", args))
        last = following[args.get("ExclusiveStartTableName")]
        return {"TableNames": [last], "LastEvaluatedTableName": last}

    dynamodb.list_tables = list_tables
    with pytest.raises(MalformedAnswer, match=r"listing tables: ListTables paging does not move on \('a'\)"):
        catalog(dynamodb, include=("*",)).find()
    assert len(dynamodb.called("list_tables")) == 3  # a, b, then a again: caught at once, not after MAX_PAGES


def test_a_list_tables_page_marker_that_is_not_a_name_is_malformed(dynamodb):
    dynamodb.answers["list_tables"] = [{"TableNames": ["a"], "LastEvaluatedTableName": 5}]
    with pytest.raises(MalformedAnswer, match="ListTables paging does not move on"):
        catalog(dynamodb, include=("*",)).find()


@pytest.mark.parametrize(
    "answer",
    [
        {"Tags": {"cdc": "on"}},
        {"Tags": "cdc=on"},
        {"Tags": [{"Key": "cdc"}]},
        {"Tags": [{"Key": "cdc", "Value": 1}]},
        {"Tags": [["cdc", "on"]]},
        None,
    ],
    ids=["a-mapping", "a-string", "no-value", "a-number-value", "a-pair", "no-answer"],
)
def test_a_tags_answer_without_a_list_of_key_value_strings_is_malformed(dynamodb, answer):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.answers["list_tags_of_resource"] = [answer]
    with pytest.raises(MalformedAnswer, match="listing the tags of table orders-1: the ListTagsOfResource answer"):
        catalog(dynamodb, tags={"cdc": "on"}).find()


def test_tags_paging_that_repeats_its_token_is_malformed(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    page = {"Tags": [{"Key": "a", "Value": "1"}], "NextToken": "t1"}
    dynamodb.answers["list_tags_of_resource"] = [dict(page), dict(page)]
    with pytest.raises(MalformedAnswer, match=r"listing the tags of table orders-1: paging does not move on \('t1'\)"):
        catalog(dynamodb, tags={"cdc": "on"}).find()


@pytest.mark.parametrize(
    "table",
    [{"TableName": "orders-1"}, {"TableName": "orders-1", "TableArn": ""}, {"TableName": "orders-1", "TableArn": 3}],
    ids=["missing", "empty", "a-number"],
)
def test_a_description_without_a_table_arn_is_malformed(dynamodb, table):
    dynamodb.add("orders-1")
    dynamodb.answers["describe_table"] = [{"Table": {**table, "LatestStreamArn": "s", "StreamSpecification": {}}}]
    with pytest.raises(MalformedAnswer, match="describing table orders-1: the DescribeTable answer has no `TableArn`"):
        catalog(dynamodb, include=("*",)).find()


def test_a_description_without_a_table_is_malformed(dynamodb):
    dynamodb.add("orders-1")
    dynamodb.answers["describe_table"] = [{"Tables": []}]
    with pytest.raises(MalformedAnswer, match="describing table orders-1: the DescribeTable answer has no `Table`"):
        catalog(dynamodb, include=("*",)).find()


@pytest.mark.parametrize(
    ("method", "operation", "doing"),
    [
        ("list_tables", "ListTables", "listing tables"),
        ("describe_table", "DescribeTable", "describing table orders-1"),
        ("list_tags_of_resource", "ListTagsOfResource", "listing the tags of table orders-1"),
    ],
)
def test_access_denied_is_a_config_error_naming_the_call(dynamodb, method, operation, doing):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.errors[method] = [client_error("AccessDeniedException", 400, operation)]
    with pytest.raises(ConfigError) as error:
        catalog(dynamodb, tags={"cdc": "on"}).find()
    assert str(error.value).startswith(f"{doing}: access denied (AccessDeniedException")


@pytest.mark.parametrize(
    ("method", "code", "status"),
    [
        ("list_tables", "ThrottlingException", 400),
        ("list_tables", "LimitExceededException", 400),
        ("describe_table", "InternalServerError", 500),
        ("list_tags_of_resource", "ThrottlingException", 400),
        ("list_tags_of_resource", "SomethingNew", 503),
    ],
)
def test_throttling_and_server_errors_are_retriable(dynamodb, method, code, status):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.errors[method] = [client_error(code, status, "Call")]
    with pytest.raises(RetriableError) as error:
        catalog(dynamodb, tags={"cdc": "on"}).find()
    assert not isinstance(error.value, MalformedAnswer)
    assert code in str(error.value)


def test_a_table_deleted_between_listing_and_describing_is_skipped(dynamodb):
    dynamodb.add("orders-1")
    dynamodb.add("orders-2")
    dynamodb.errors["describe_table"] = [client_error("ResourceNotFoundException", 400, "DescribeTable")]
    assert catalog(dynamodb, include=("*",)).find() == ["orders-2"]


def test_a_table_deleted_between_describing_and_reading_its_tags_is_skipped(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.add("orders-2", cdc="on")
    dynamodb.errors["list_tags_of_resource"] = [client_error("ResourceNotFoundException", 400, "ListTagsOfResource")]
    assert catalog(dynamodb, tags={"cdc": "on"}).find() == ["orders-2"]


def test_a_deleted_table_is_described_again_when_it_is_listed_again(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    tables = catalog(dynamodb, tags={"cdc": "on"})
    assert tables.find() == ["orders-1"]
    dynamodb.errors["list_tags_of_resource"] = [client_error("ResourceNotFoundException", 400, "ListTagsOfResource")]
    assert tables.find() == []  # deleted and created again under the same name: a new ARN
    assert tables.find() == ["orders-1"]
    assert len(dynamodb.called("describe_table")) == 2


def test_a_table_without_a_stream_is_not_found_and_logged_once(dynamodb, caplog):
    dynamodb.add("orders-1")
    dynamodb.add("orders-2", stream=False)
    tables = catalog(dynamodb, include=("orders-*",))
    with caplog.at_level(logging.INFO, logger="bridge.source.catalog"):
        assert tables.find() == ["orders-1"]
        assert tables.find() == ["orders-1"]
    warnings = [r for r in caplog.records if r.name == "bridge.source.catalog" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("table orders-2 matches `discover` but has no stream enabled")


def test_a_table_is_found_once_its_stream_is_enabled(dynamodb):
    dynamodb.add("orders-1", stream=False)
    tables = catalog(dynamodb, include=("orders-*",))
    assert tables.find() == []
    dynamodb.tables["orders-1"]["stream"] = True
    assert tables.find() == ["orders-1"]


def test_a_disabled_stream_is_not_a_stream(dynamodb):
    dynamodb.add("orders-1")
    dynamodb.answers["describe_table"] = [
        {
            "Table": {
                "TableName": "orders-1",
                "TableArn": ARN + "orders-1",
                "StreamSpecification": {"StreamEnabled": False},
                "LatestStreamArn": ARN + "orders-1/stream/old",  # kept by DynamoDB after the stream is disabled
            }
        }
    ]
    assert catalog(dynamodb, include=("*",)).find() == []


def test_tables_with_a_stream_are_described_once(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    dynamodb.add("orders-2", cdc="off")
    dynamodb.add("orders-3", stream=False)
    tables = catalog(dynamodb, include=("orders-*",), tags={"cdc": "on"})
    assert tables.find() == ["orders-1"]
    assert tables.find() == ["orders-1"]
    described = [args["TableName"] for args in dynamodb.called("describe_table")]
    assert described.count("orders-1") == 1
    assert described.count("orders-2") == 1  # has a stream: its ARN is kept though its tags do not match
    assert described.count("orders-3") == 2  # no stream: looked at again at every discovery
    assert len(dynamodb.called("list_tags_of_resource")) == 4  # tags are read at every discovery


def test_tag_changes_are_seen_at_the_next_discovery(dynamodb):
    dynamodb.add("orders-1", cdc="on")
    tables = catalog(dynamodb, tags={"cdc": "on"})
    assert tables.find() == ["orders-1"]
    dynamodb.tables["orders-1"]["tags"] = {"cdc": "off"}
    assert tables.find() == []


def test_tag_reads_are_paced_across_tables_and_pages():
    time = FakeTime()
    dynamodb = FakeDynamoDB(tag_page_size=1, clock=time)
    dynamodb.add("a", cdc="on")
    dynamodb.add("b", cdc="on", team="x")  # two pages of tags
    dynamodb.add("c", cdc="on")
    assert catalog(dynamodb, time=time, tags={"cdc": "on"}).find() == ["a", "b", "c"]
    gap = 1 / TAG_CALLS_PER_S
    assert time.slept == [pytest.approx(gap)] * 3
    moments = [args["at"] for args in dynamodb.called("list_tags_of_resource")]
    assert moments == [pytest.approx(1000.0 + gap * index) for index in range(4)]


def test_tag_reads_wait_only_what_is_left_of_the_gap():
    time = FakeTime()
    dynamodb = FakeDynamoDB(clock=time)
    dynamodb.add("a", cdc="on")
    dynamodb.add("b", cdc="on")
    real_list_tags = dynamodb.list_tags_of_resource

    def slow_list_tags(**args):  # each call takes 0.15 s of the 0.2 s gap
        answer = real_list_tags(**args)
        time.now += 0.15
        return answer

    dynamodb.list_tags_of_resource = slow_list_tags
    assert catalog(dynamodb, time=time, tags={"cdc": "on"}).find() == ["a", "b"]
    assert time.slept == [pytest.approx(1 / TAG_CALLS_PER_S - 0.15)]


def test_the_pace_holds_from_one_discovery_to_the_next_and_not_after_a_pause():
    time = FakeTime()
    dynamodb = FakeDynamoDB(clock=time)
    dynamodb.add("a", cdc="on")
    tables = catalog(dynamodb, time=time, tags={"cdc": "on"})
    tables.find()
    tables.find()  # at once: waits for the gap
    assert time.slept == [pytest.approx(1 / TAG_CALLS_PER_S)]
    time.now += 10
    tables.find()  # long after: no wait
    assert len(time.slept) == 1
