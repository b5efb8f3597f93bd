"""The official Elasticsearch Python client against a Sluice agent: bulk
ingest into the `elasticsearch` source, then searches on the agent's API.

    python3 elasticsearch_client.py INGEST_URL API_URL TOKEN

Run by tests/elasticsearch.rs with PYTHONPATH set to the pinned client.
Fails (exit 1, with the reason) on the first answer that is not what
Elasticsearch would answer for the same documents; prints one JSON line of
measurements on success.
"""

import datetime
import json
import sys
import time

import elasticsearch
from elasticsearch import Elasticsearch, helpers

N = 100_000
GZ = 10
SINGLE = 3
SERVICES = ["checkout", "search", "login", "cart"]
BASE = datetime.datetime(2026, 12, 3, 10, 0, 0, tzinfo=datetime.timezone.utc)
STEP_MS = 100  # document i is at BASE + i * 100 ms


def at(ms):
    t = BASE + datetime.timedelta(milliseconds=ms)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check(cond, what, got=None):
    if not cond:
        print(f"FAILED: {what}" + ("" if got is None else f": {got!r}"), file=sys.stderr)
        sys.exit(1)


def docs():
    for i in range(N):
        yield {
            "_index": "app-logs",
            "_id": f"d{i}",
            "_source": {
                "@timestamp": at(i * STEP_MS),
                "message": f"request {i} served",
                "service": SERVICES[i % 4],
                "n": i,
                "level": "error" if i % 10 == 0 else "info",
            },
        }


def main():
    ingest_url, api_url, token = sys.argv[1:4]
    print("client", elasticsearch.__versionstr__, file=sys.stderr)
    # Basic authentication with the token as the password, as shippers do.
    es = Elasticsearch(ingest_url, basic_auth=("elastic", token), request_timeout=120)
    info = es.info()
    check(info["tagline"] == "You Know, for Search", "GET /", info.body)
    check(es.ping(), "HEAD /")
    ack = es.indices.put_index_template(name="app", index_patterns=["app-*"])
    check(ack["acknowledged"] is True, "a template is acknowledged", ack.body)

    started = time.monotonic()
    ok, _ = helpers.bulk(es, docs(), chunk_size=2000, max_retries=10, stats_only=True)
    bulk_seconds = time.monotonic() - started
    check(ok == N, f"helpers.bulk took {N} documents", ok)

    # A raw body with bad items: each fails alone, the others are stored.
    raw = "\n".join(
        [
            '{"index":{"_index":"bad-batch","_id":"ok1"}}',
            '{"@timestamp":"2026-12-03T09:00:00Z","message":"fine 1"}',
            "{not json",
            '{"delete":{"_index":"bad-batch","_id":"ok1"}}',
            '{"update":{"_index":"bad-batch","_id":"ok1"}}',
            '{"doc":{"x":1}}',
            '{"index":{"_index":"bad-batch","_id":"bad-doc"}}',
            "[1,2,3]",
            '{"create":{"_index":"bad-batch","_id":"ok2"}}',
            '{"@timestamp":"2026-12-03T09:00:01Z","message":"fine 2"}',
            '{"index":{"_index":"bad-batch","_id":"no-source"}}',
        ]
    )
    r = es.bulk(operations=raw)
    check(r["errors"] is True, "errors is true", r.body)
    got = [(op, item["status"], item.get("error", {}).get("type")) for it in r["items"] for op, item in it.items()]
    want = [
        ("index", 201, None),
        ("index", 400, "illegal_argument_exception"),
        ("delete", 400, "illegal_argument_exception"),
        ("update", 400, "illegal_argument_exception"),
        ("index", 400, "document_parsing_exception"),
        ("create", 201, None),
        ("index", 400, "action_request_validation_exception"),
    ]
    check(got == want, "the items of the raw body", got)
    check("only ingests" in r["items"][2]["delete"]["error"]["reason"], "delete names why", r["items"][2])

    # A gzip body (Filebeat compresses by default; here the client does).
    gz = Elasticsearch(ingest_url, basic_auth=("elastic", token), http_compress=True)
    r = gz.bulk(operations=[x for i in range(GZ) for x in ({"create": {"_index": "gz"}}, {"message": f"zipped {i}"})])
    check(r["errors"] is False and len(r["items"]) == GZ, "a gzip bulk", r.body)

    # Single documents: with an id, without one, and `create`.
    r = es.index(index="single", id="s1", document={"@timestamp": at(0), "message": "one"})
    check(r["result"] == "created" and r["_id"] == "s1", "index with an id", r.body)
    r = es.index(index="single", document={"message": "two"})
    check(r["result"] == "created" and len(r["_id"]) > 0, "index without an id", r.body)
    r = es.create(index="single", id="s3", document={"message": "three"})
    check(r["result"] == "created", "create", r.body)

    # Search on the API, once the store has committed everything.
    api = Elasticsearch(api_url, bearer_auth=token, request_timeout=120)
    deadline = time.monotonic() + 120
    count = -1
    while time.monotonic() < deadline:
        try:
            count = api.count()["count"]
        except elasticsearch.ApiError:
            count = -1
        if count == N + 2 + GZ + SINGLE:
            break
        time.sleep(0.2)
    searchable_seconds = time.monotonic() - started
    check(count == N + 2 + GZ + SINGLE, "every document is searchable", count)

    def total(index="app-logs", **kw):
        r = api.search(index=index, size=0, track_total_hits=True, **kw)
        check(r["hits"]["total"]["relation"] == "eq", "an exact total", r["hits"]["total"])
        return r["hits"]["total"]["value"]

    check(total(query={"match_all": {}}) == N, "all", total(query={"match_all": {}}))
    check(total(index="bad-batch") == 2, "the good items of the raw body", total(index="bad-batch"))
    check(total(index="gz") == GZ, "the gzip bulk", total(index="gz"))
    check(total(index="single") == SINGLE, "the single documents", total(index="single"))
    check(api.count(index="app-logs", query={"term": {"service": "cart"}})["count"] == N // 4, "_count of a query")
    check(total(q="service:login") == N // 4, "q")
    check(total(index="_all") == N + 2 + GZ + SINGLE, "_all", total(index="_all"))
    check(total(index="store") == N + 2 + GZ + SINGLE, "the store sink by id", total(index="store"))
    check(total(index="nothing-here") == 0, "an index nobody wrote", total(index="nothing-here"))
    check(total(query={"term": {"service": "checkout"}}) == N // 4, "term")
    check(total(query={"terms": {"service.keyword": ["checkout", "cart"]}}) == N // 2, "terms")
    check(total(query={"match_phrase": {"message": "request 42 served"}}) == 1, "match_phrase")
    check(total(query={"query_string": {"query": "level:error AND service:search"}}) ==
          sum(1 for i in range(N) if i % 10 == 0 and i % 4 == 1), "query_string")
    lo, hi = 1_000_000, 2_000_000  # ms after BASE: documents 10,000 to 19,999
    check(total(query={"range": {"@timestamp": {"gte": at(lo), "lt": at(hi)}}}) == 10_000, "range on @timestamp")
    epoch = int(BASE.timestamp() * 1000)
    check(total(query={"range": {"@timestamp": {"gt": epoch + lo, "lte": epoch + hi, "format": "epoch_millis"}}}) == 10_000,
          "range in epoch millis")
    check(total(query={"range": {"n": {"gte": 500, "lt": 1500}}}) == 1000, "range on a number")
    q = {"bool": {
        "must": [{"term": {"service": "checkout"}}],
        "filter": [{"range": {"n": {"lt": 50_000}}}],
        "must_not": [{"term": {"level": "error"}}],
    }}
    want = sum(1 for i in range(N) if i % 4 == 0 and i < 50_000 and i % 10 != 0)
    check(total(query=q) == want, "bool", (total(query=q), want))
    q = {"bool": {"should": [{"term": {"service": "login"}}, {"term": {"service": "cart"}}],
                  "must_not": {"range": {"n": {"gte": 1000}}}}}
    check(total(query=q) == 500, "bool should", total(query=q))

    # The default total stops at 10,000.
    r = api.search(index="app-logs", size=0)
    check(r["hits"]["total"] == {"value": 10_000, "relation": "gte"}, "the default total", r["hits"]["total"])

    # Hits: oldest first, a page further, newest first; _source as sent.
    r = api.search(index="app-logs", size=5, sort=[{"@timestamp": "asc"}], query={"match_all": {}})
    ids = [h["_id"] for h in r["hits"]["hits"]]
    check(ids == ["d0", "d1", "d2", "d3", "d4"], "sort asc", ids)
    first = r["hits"]["hits"][0]
    check(first["_index"] == "app-logs", "_index", first)
    sent = {"@timestamp": at(0), "message": "request 0 served", "service": "checkout", "n": 0, "level": "error"}
    check(first["_source"] == sent, "_source is the document sent", first["_source"])
    check(first["sort"] == [epoch], "sort values", first.get("sort"))
    r = api.search(index="app-logs", size=3, from_=10, sort="@timestamp:asc")
    check([h["_id"] for h in r["hits"]["hits"]] == ["d10", "d11", "d12"], "from", r["hits"]["hits"])
    r = api.search(index="app-logs", size=3, sort=[{"@timestamp": {"order": "desc"}}], query={"term": {"level": "error"}})
    check([h["_id"] for h in r["hits"]["hits"]] == ["d99990", "d99980", "d99970"], "sort desc", r["hits"]["hits"])
    stamps = [h["_source"]["@timestamp"] for h in api.search(index="app-logs", size=100, sort="@timestamp:desc")["hits"]["hits"]]
    check(stamps == sorted(stamps, reverse=True) and len(stamps) == 100, "newest first", stamps[:3])

    # A date histogram: 10-minute buckets adding up to the total.
    r = api.search(index="app-logs", size=0, track_total_hits=True,
                   aggs={"per_10m": {"date_histogram": {"field": "@timestamp", "fixed_interval": "10m"}}})
    buckets = r["aggregations"]["per_10m"]["buckets"]
    counts = [b["doc_count"] for b in buckets]
    check(sum(counts) == N, "the buckets add up to the total", counts)
    check(counts == [6000] * 16 + [4000], "one bucket per 10 minutes", counts)
    check(buckets[0]["key"] == epoch and buckets[0]["key_as_string"] == "2026-12-03T10:00:00.000Z", "bucket keys", buckets[0])
    r = api.search(index="app-logs", size=0, query={"term": {"service": "cart"}},
                   aggs={"h": {"date_histogram": {"field": "@timestamp", "calendar_interval": "hour"}}})
    check(sum(b["doc_count"] for b in r["aggregations"]["h"]["buckets"]) == N // 4, "an hourly histogram of a query")

    # What is not supported is refused by name, in Elasticsearch's shape.
    for body, word in [
        ({"query": {"fuzzy": {"message": "reqest"}}}, "fuzzy"),
        ({"aggs": {"x": {"terms": {"field": "service"}}}}, "terms"),
        ({"sort": [{"n": "asc"}]}, "n"),
    ]:
        try:
            api.search(index="app-logs", **body)
            check(False, f"{body} was refused")
        except elasticsearch.BadRequestError as e:
            check(e.body["status"] == 400 and word in e.body["error"]["reason"], f"{body} names {word}", e.body)
            check(e.body["error"]["type"] in ("parsing_exception", "illegal_argument_exception"), "the error type", e.body)

    # The token is required.
    try:
        Elasticsearch(api_url).search(index="app-logs")
        check(False, "a search without the token was refused")
    except elasticsearch.AuthenticationException:
        pass
    try:
        Elasticsearch(ingest_url, bearer_auth="wrong").bulk(operations='{"index":{"_index":"x"}}\n{"a":1}\n')
        check(False, "a bulk with a wrong token was refused")
    except elasticsearch.AuthenticationException:
        pass

    print(json.dumps({
        "documents": N,
        "bulk_seconds": round(bulk_seconds, 2),
        "bulk_docs_per_second": round(N / bulk_seconds),
        "searchable_after_seconds": round(searchable_seconds, 2),
    }))


if __name__ == "__main__":
    main()
