"""DynamoDB adapter (AWS deployment). Table design, all on-demand (PAY_PER_REQUEST):

| table                 | partition key | sort key                           | notes                                   |
|-----------------------|---------------|------------------------------------|-----------------------------------------|
| {prefix}-lots         | lot_id        | -                                  | body = Lot JSON                         |
| {prefix}-readings     | lot_id        | sk = "<UTC ISO>#<device_id>"       | range query per lot = one key range;    |
|                       |               |                                    | latest = Query descending, Limit 1      |
| {prefix}-forecasts    | lot_id        | issued_at (UTC ISO)                | body = Forecast JSON                    |
| {prefix}-devices      | device_id     | -                                  | GSI key_hash-index (PK key_hash)        |

UTC ISO text is fixed width, so lexicographic order is time order. A batch is written with
TransactWriteItems (max 100 items), each Put conditioned on the key not existing, which gives
the same all-or-nothing and idempotency semantics as the SQLite adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from parking_core.contracts import Device, Forecast, Lot, PutOutcome, Reading, utc_iso
from parking_core.store.codec import reading_from_row, reading_sort_key, slots_to_json
from parking_core.store.port import (
    ConflictError,
    DeviceExistsError,
    NotFoundError,
    StoreError,
    StoreUnavailable,
    classify_batch,
)

MAX_TRANSACTION_ITEMS = 100


def table_definitions(prefix: str) -> list[dict[str, Any]]:
    """CreateTable arguments; infra/ declares the same tables in CDK."""

    def table(name: str, pk: str, sk: str | None = None, **extra: Any) -> dict[str, Any]:
        keys = [{"AttributeName": pk, "KeyType": "HASH"}]
        attrs = [{"AttributeName": pk, "AttributeType": "S"}]
        if sk:
            keys.append({"AttributeName": sk, "KeyType": "RANGE"})
            attrs.append({"AttributeName": sk, "AttributeType": "S"})
        return {
            "TableName": f"{prefix}-{name}",
            "KeySchema": keys,
            "AttributeDefinitions": attrs + extra.pop("extra_attrs", []),
            "BillingMode": "PAY_PER_REQUEST",
            **extra,
        }

    return [
        table("lots", "lot_id"),
        table("readings", "lot_id", "sk"),
        table("forecasts", "lot_id", "issued_at"),
        table(
            "devices",
            "device_id",
            extra_attrs=[{"AttributeName": "key_hash", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "key_hash-index",
                    "KeySchema": [{"AttributeName": "key_hash", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        ),
    ]


def _reading_item(r: Reading, received_at: str) -> dict[str, Any]:
    item = {
        "lot_id": {"S": r.lot_id},
        "sk": {"S": reading_sort_key(r)},
        "device_id": {"S": r.device_id},
        "observed_at": {"S": utc_iso(r.observed_at)},
        "capacity": {"N": str(r.capacity)},
        "occupied": {"N": str(r.occupied)},
        "received_at": {"S": received_at},
    }
    slots = slots_to_json(r)
    if slots is not None:
        item["slots"] = {"S": slots}
    return item


def _reading_from_item(item: dict[str, Any]) -> Reading:
    return reading_from_row(
        item["lot_id"]["S"],
        item["device_id"]["S"],
        item["observed_at"]["S"],
        int(item["capacity"]["N"]),
        int(item["occupied"]["N"]),
        item["slots"]["S"] if "slots" in item else None,
    )


def _device_from_item(item: dict[str, Any]) -> Device:
    revoked = item.get("revoked_at", {}).get("S")
    return Device(
        device_id=item["device_id"]["S"],
        lot_id=item["lot_id"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        revoked_at=datetime.fromisoformat(revoked) if revoked else None,
    )


_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
              "TransactionInProgressException", "InternalServerError"}

class DynamoDBStore:
    def __init__(self, client: Any = None, table_prefix: str = "parkcast", region: str = "eu-west-2"):
        if client is None:
            import boto3

            client = boto3.client("dynamodb", region_name=region)
        self.client = client
        self.prefix = table_prefix
        self.lots_table = f"{table_prefix}-lots"
        self.readings_table = f"{table_prefix}-readings"
        self.forecasts_table = f"{table_prefix}-forecasts"
        self.devices_table = f"{table_prefix}-devices"

    def create_tables(self) -> None:
        """For tests and first-time local use; in AWS the CDK stack owns the tables."""
        existing = set(self.client.list_tables()["TableNames"])
        for definition in table_definitions(self.prefix):
            if definition["TableName"] not in existing:
                self.client.create_table(**definition)
                self.client.get_waiter("table_exists").wait(TableName=definition["TableName"])

    def close(self) -> None:
        pass

    # -- helpers ---------------------------------------------------------------------
    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator(operation)
        yield from paginator.paginate(**kwargs)

    # -- lots ------------------------------------------------------------------------
    def put_lot(self, lot: Lot) -> None:
        self.client.put_item(
            TableName=self.lots_table, Item={"lot_id": {"S": lot.lot_id}, "body": {"S": lot.model_dump_json()}}
        )

    def get_lot(self, lot_id: str) -> Lot | None:
        item = self.client.get_item(TableName=self.lots_table, Key={"lot_id": {"S": lot_id}}).get("Item")
        return Lot.model_validate_json(item["body"]["S"]) if item else None

    def list_lots(self) -> list[Lot]:
        lots = [
            Lot.model_validate_json(item["body"]["S"])
            for page in self._pages("scan", TableName=self.lots_table)
            for item in page["Items"]
        ]
        return sorted(lots, key=lambda lot: lot.lot_id)

    # -- readings --------------------------------------------------------------------
    def _stored(self, readings: Sequence[Reading]) -> dict[tuple, Reading]:
        keys = {(r.lot_id, reading_sort_key(r)) for r in readings}
        request = {
            self.readings_table: {"Keys": [{"lot_id": {"S": lot}, "sk": {"S": sk}} for lot, sk in keys]}
        }
        found: dict[tuple, Reading] = {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.readings_table, []):
                reading = _reading_from_item(item)
                found[reading.key] = reading
            request = response.get("UnprocessedKeys") or {}
        return found

    def put_readings(self, readings: Sequence[Reading]) -> list[PutOutcome]:
        if not readings:
            return []
        if len(readings) > MAX_TRANSACTION_ITEMS:
            raise StoreError(f"at most {MAX_TRANSACTION_ITEMS} readings per batch, got {len(readings)}")
        for _attempt in range(5):
            outcomes, conflicts = classify_batch(readings, self._stored(readings))
            if conflicts:
                raise ConflictError(conflicts)
            received = utc_iso(datetime.now(UTC))
            new_items = [_reading_item(r, received) for r, o in zip(readings, outcomes, strict=True) if o == "created"]
            if not new_items:
                return outcomes
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.readings_table,
                                "Item": item,
                                "ConditionExpression": "attribute_not_exists(sk)",
                            }
                        }
                        for item in new_items
                    ]
                )
                return outcomes
            except self.client.exceptions.TransactionCanceledException:
                # Another writer stored one of these keys between our read and write: re-classify.
                continue
            except self.client.exceptions.ClientError as exc:
                # Throttled after botocore's own retries: nothing was written; the caller retries (503).
                if exc.response.get("Error", {}).get("Code") in _THROTTLED:
                    raise StoreUnavailable(f"DynamoDB throttled the batch: {exc}") from None
                raise
        raise StoreUnavailable("could not store the batch: concurrent writers kept colliding")

    def query_readings(
        self, lot_id: str, start: datetime, end: datetime, limit: int | None = None
    ) -> list[Reading]:
        kwargs: dict[str, Any] = {
            "TableName": self.readings_table,
            # end-exclusive: "<end>" sorts before every "<end>#device".
            "KeyConditionExpression": "lot_id = :l AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":l": {"S": lot_id},
                ":a": {"S": utc_iso(start)},
                ":b": {"S": utc_iso(end)},
            },
        }
        out: list[Reading] = []
        for page in self._pages("query", **kwargs):
            for item in page["Items"]:
                out.append(_reading_from_item(item))
                if limit is not None and len(out) >= limit:
                    return out
        return out

    def latest_reading(self, lot_id: str) -> Reading | None:
        items = self.client.query(
            TableName=self.readings_table,
            KeyConditionExpression="lot_id = :l",
            ExpressionAttributeValues={":l": {"S": lot_id}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        return _reading_from_item(items[0]) if items else None

    def count_readings(self, lot_id: str | None = None) -> int:
        if lot_id is None:
            pages = self._pages("scan", TableName=self.readings_table, Select="COUNT")
        else:
            pages = self._pages(
                "query",
                TableName=self.readings_table,
                Select="COUNT",
                KeyConditionExpression="lot_id = :l",
                ExpressionAttributeValues={":l": {"S": lot_id}},
            )
        return sum(page["Count"] for page in pages)

    # -- forecasts -------------------------------------------------------------------
    def put_forecast(self, forecast: Forecast) -> None:
        self.client.put_item(
            TableName=self.forecasts_table,
            Item={
                "lot_id": {"S": forecast.lot_id},
                "issued_at": {"S": utc_iso(forecast.issued_at)},
                "model_version": {"S": forecast.model_version},
                "body": {"S": forecast.model_dump_json()},
            },
        )

    def latest_forecast(self, lot_id: str) -> Forecast | None:
        items = self.client.query(
            TableName=self.forecasts_table,
            KeyConditionExpression="lot_id = :l",
            ExpressionAttributeValues={":l": {"S": lot_id}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        return Forecast.model_validate_json(items[0]["body"]["S"]) if items else None

    def query_forecasts(self, lot_id: str, start: datetime, end: datetime) -> list[Forecast]:
        pages = self._pages(
            "query",
            TableName=self.forecasts_table,
            KeyConditionExpression="lot_id = :l AND issued_at BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":l": {"S": lot_id},
                ":a": {"S": utc_iso(start)},
                ":b": {"S": utc_iso(end)},
            },
        )
        forecasts = [Forecast.model_validate_json(i["body"]["S"]) for p in pages for i in p["Items"]]
        return [f for f in forecasts if f.issued_at < end]

    # -- devices ---------------------------------------------------------------------
    def add_device(self, device: Device, key_hash: str) -> None:
        try:
            self.client.put_item(
                TableName=self.devices_table,
                Item={
                    "device_id": {"S": device.device_id},
                    "lot_id": {"S": device.lot_id},
                    "key_hash": {"S": key_hash},
                    "created_at": {"S": utc_iso(device.created_at)},
                },
                ConditionExpression="attribute_not_exists(device_id)",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise DeviceExistsError(f"device {device.device_id!r} already exists") from exc

    def get_device(self, device_id: str) -> Device | None:
        item = self.client.get_item(TableName=self.devices_table, Key={"device_id": {"S": device_id}}).get("Item")
        return _device_from_item(item) if item else None

    def list_devices(self) -> list[Device]:
        devices = [
            _device_from_item(item)
            for page in self._pages("scan", TableName=self.devices_table)
            for item in page["Items"]
        ]
        return sorted(devices, key=lambda d: d.device_id)

    def revoke_device(self, device_id: str, at: datetime) -> Device:
        try:
            self.client.update_item(
                TableName=self.devices_table,
                Key={"device_id": {"S": device_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :t)",
                ConditionExpression="attribute_exists(device_id)",
                ExpressionAttributeValues={":t": {"S": utc_iso(at)}},
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise NotFoundError(f"no device {device_id!r}") from exc
        device = self.get_device(device_id)
        if device is None:  # removed between the update and the read
            raise NotFoundError(f"no device {device_id!r}")
        return device

    def device_for_key_hash(self, key_hash: str) -> Device | None:
        items = self.client.query(
            TableName=self.devices_table,
            IndexName="key_hash-index",
            KeyConditionExpression="key_hash = :h",
            ExpressionAttributeValues={":h": {"S": key_hash}},
        )["Items"]
        return _device_from_item(items[0]) if items else None
