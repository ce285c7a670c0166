"""A fixed, seeded corpus of realistic DynamoDB stream records (an order table, NEW_AND_OLD_IMAGES).

Each item is about 1 KB of attribute-value JSON: strings, integers, prices, 38-digit numbers, booleans, a
null, nested maps and lists, string/number/binary sets and binary blobs. 85 % of the records are MODIFY
(both images, a few attributes changed), 10 % INSERT and 5 % REMOVE. The same seed gives the same corpus
in every process, so the local AWS endpoint and the benchmarks agree on it without sharing files.

The snapshot benchmark's table (`table_item`) holds items of the same shape, each with a unique partition key.

Records come in the shape `GetRecords` puts on the wire (`binary="base64"`: B/BS as base64 text,
`ApproximateCreationDateTime` as epoch seconds) or the shape boto3 returns (`binary="bytes"`: bytes and a
datetime), which is what the naive baselines consume.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from collections.abc import Iterator

TABLE = "Orders"
REGION = "us-east-1"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-28T00:00:00.000"
SHARDS = 4
SEED = 20261128
_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "amber",
    "basalt",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "granite",
]
_CITIES = ["Lisbon", "Oslo", "Kraków", "Zürich", "Tallinn", "Porto", "Ghent", "Turku"]
_START = 1_795_000_000.0
POOL = 2_000


def shard_id(index: int) -> str:
    return f"shardId-00000001795000000000-{index:08x}"


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _b(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _big(rng: random.Random) -> str:
    digits = str(rng.randrange(10**37, 10**38))
    return digits if rng.random() < 0.5 else f"{digits[:20]}.{digits[20:]}"


def _item(rng: random.Random, number: int) -> dict:
    """One order as plain-ish values; binaries stay bytes until `_wire` picks their encoding."""
    lines = [
        {
            "M": {
                "sku": {"S": f"SKU-{rng.randrange(10**6):06d}"},
                "qty": {"N": str(rng.randrange(1, 9))},
                "price": {"N": f"{rng.randrange(100, 99999) / 100:.2f}"},
                "options": {"L": [{"S": rng.choice(_WORDS)} for _ in range(rng.randrange(0, 3))]},
            }
        }
        for _ in range(rng.randrange(1, 4))
    ]
    return {
        "pk": {"S": f"customer#{number % 50_000:06d}"},
        "sk": {"S": f"order#{number:09d}"},
        "status": {"S": rng.choice(["NEW", "PAID", "PACKED", "SHIPPED"])},
        "email": {"S": f"{rng.choice(_WORDS)}.{rng.choice(_WORDS)}@example.com"},
        "created_at": {"S": f"2026-11-{rng.randrange(1, 28):02d}T{rng.randrange(24):02d}:00:00Z"},
        "version": {"N": str(rng.randrange(1, 50))},
        "total": {"N": f"{rng.randrange(100, 999999) / 100:.2f}"},
        "ledger": {"N": _big(rng)},
        "customer_id": {"N": str(rng.randrange(10**12, 10**15))},
        "gift": {"BOOL": rng.random() < 0.1},
        "coupon": {"NULL": True},
        "note": {"S": _text(rng, rng.randrange(4, 16))},
        "tags": {"SS": sorted({rng.choice(_WORDS) for _ in range(4)})},
        "scores": {"NS": sorted({str(rng.randrange(1000)) for _ in range(3)} | {"0.5"})},
        "thumbs": {"BS": [_b(rng, 12), _b(rng, 16)]},
        "signature": {"B": _b(rng, 48)},
        "address": {
            "M": {
                "street": {"S": f"{rng.randrange(1, 300)} {rng.choice(_WORDS).title()} Street"},
                "city": {"S": rng.choice(_CITIES)},
                "zip": {"S": f"{rng.randrange(10000, 99999)}"},
                "geo": {
                    "M": {"lat": {"N": f"{rng.uniform(-90, 90):.6f}"}, "lon": {"N": f"{rng.uniform(-180, 180):.6f}"}}
                },
            }
        },
        "lines": {"L": lines},
        "history": {"L": [{"N": str(rng.randrange(10**9))} for _ in range(rng.randrange(2, 6))]},
        "meta": {
            "M": {
                "source": {"S": rng.choice(["web", "app", "pos"])},
                "flags": {"L": [{"BOOL": rng.random() < 0.5} for _ in range(3)]},
                "trace": {"S": rng.randbytes(16).hex()},
            }
        },
    }


def _wire(value, binary: str):
    """Attribute values with B/BS as base64 text (`base64`) or bytes (`bytes`)."""
    if isinstance(value, dict):
        return {k: _wire(v, binary) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v, binary) for v in value]
    if isinstance(value, bytes) and binary == "base64":
        return base64.b64encode(value).decode()
    return value


def _pool(rng: random.Random, size: int, binary: str) -> list[dict]:
    return [_wire(_item(rng, number), binary) for number in range(size)]


def records(count: int, *, binary: str = "base64", seed: int = SEED) -> Iterator[tuple[int, dict]]:
    """`count` stream records as `(shard index, record)`, in stream order; items map to shards by key.

    Items are drawn from a pool of `POOL` distinct generated orders, each record with its own key, status,
    version and total, so that generating 400,000 records takes seconds, not minutes.
    """
    rng = random.Random(seed)
    pool = _pool(rng, min(count, POOL), binary)
    sequence = [10**20] * SHARDS
    statuses = [{"S": s} for s in ("NEW", "PAID", "PACKED", "SHIPPED", "DELIVERED")]
    for number in range(count):
        item = dict(pool[number % POOL])
        item["pk"] = {"S": f"customer#{number % 50_000:06d}"}
        item["sk"] = {"S": f"order#{number:09d}"}
        roll = rng.random()
        event = "MODIFY" if roll < 0.85 else "INSERT" if roll < 0.95 else "REMOVE"
        data: dict = {"Keys": {"pk": item["pk"], "sk": item["sk"]}}
        if event == "MODIFY":
            new = dict(item)
            new["status"] = statuses[number % 5]
            new["version"] = {"N": str(number % 97 + 2)}
            new["total"] = {"N": f"{rng.randrange(100, 999999) / 100:.2f}"}
            data["OldImage"], data["NewImage"] = item, new
        elif event == "INSERT":
            data["NewImage"] = item
        else:
            data["OldImage"] = item
        shard = number % SHARDS
        sequence[shard] += 1 + rng.randrange(100)
        created = _START + number / 1000
        data["ApproximateCreationDateTime"] = (
            created if binary == "base64" else dt.datetime.fromtimestamp(int(created), dt.UTC)
        )
        data["SequenceNumber"] = str(sequence[shard])
        data["SizeBytes"] = 1024
        data["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        yield (
            shard,
            {
                "eventID": f"{rng.getrandbits(128):032x}",
                "eventName": event,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": data,
            },
        )


_STATUSES = ("NEW", "PAID", "PACKED", "SHIPPED", "DELIVERED")
TABLE_VARYING = ("pk", "sk", "status", "version")  # the attributes `table_varying` sets per item


def table_pool(*, binary: str = "base64", seed: int = SEED) -> list[dict]:
    """The `POOL` generated orders the snapshot table's items are drawn from (the same orders as `records`)."""
    return _pool(random.Random(seed), POOL, binary)


def table_key(number: int) -> dict:
    """The primary key of item `number` of the snapshot table: its partition key is unique in the table."""
    return {"pk": {"S": f"customer#{number:09d}"}, "sk": {"S": f"order#{number:09d}"}}


def table_varying(number: int) -> dict:
    """The attributes of item `number` that are its own (`TABLE_VARYING`): key, status and version."""
    return {**table_key(number), "status": {"S": _STATUSES[number % 5]}, "version": {"N": str(number % 97 + 2)}}


def table_item(number: int, pool: list[dict]) -> dict:
    """Item `number` of the snapshot table (~1.2 KB of attribute-value JSON): an order of `pool`
    (`table_pool`, in the same binary shape as wanted) with the attributes of `table_varying`."""
    return {**pool[number % len(pool)], **table_varying(number)}
