"""Static facts about Redis commands: which are safe to repeat, which block, which change
the connection's session. Pure data, shared by the sync and async layers.

``READONLY`` is every command and subcommand that Redis 7.0's ``COMMAND`` reply flags
``readonly`` and not ``write`` (regenerate with ``python bench/gen_commands.py``), plus
later read-only commands and the common modules' reads.
"""

from __future__ import annotations


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.replace("\n", ",").split(",") if n.strip())


READONLY: frozenset[str] = _names(
    """
    BITCOUNT, BITFIELD_RO, BITPOS, DBSIZE, DUMP, EVALSHA_RO, EVAL_RO, EXISTS, EXPIRETIME,
    FCALL_RO, GEODIST, GEOHASH, GEOPOS, GEORADIUSBYMEMBER_RO, GEORADIUS_RO, GEOSEARCH, GET,
    GETBIT, GETRANGE, HEXISTS, HGET, HGETALL, HKEYS, HLEN, HMGET, HRANDFIELD, HSCAN, HSTRLEN,
    HVALS, KEYS, LCS, LINDEX, LLEN, LOLWUT, LPOS, LRANGE, MGET, PEXPIRETIME, PFCOUNT, PTTL,
    RANDOMKEY, SCAN, SCARD, SDIFF, SINTER, SINTERCARD, SISMEMBER, SMEMBERS, SMISMEMBER,
    SORT_RO, SRANDMEMBER, SSCAN, STRLEN, SUBSTR, SUNION, TOUCH, TTL, TYPE, XLEN, XPENDING,
    XRANGE, XREAD, XREVRANGE, ZCARD, ZCOUNT, ZDIFF, ZINTER, ZINTERCARD, ZLEXCOUNT, ZMSCORE,
    ZRANDMEMBER, ZRANGE, ZRANGEBYLEX, ZRANGEBYSCORE, ZRANK, ZREVRANGE, ZREVRANGEBYLEX,
    ZREVRANGEBYSCORE, ZREVRANK, ZSCAN, ZSCORE, ZUNION,
    MEMORY USAGE, OBJECT ENCODING, OBJECT FREQ, OBJECT IDLETIME, OBJECT REFCOUNT,
    XINFO CONSUMERS, XINFO GROUPS, XINFO STREAM,
    HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME,
    VCARD, VDIM, VEMB, VGETATTR, VINFO, VLINKS, VRANDMEMBER, VSIM,
    JSON.GET, JSON.MGET, JSON.TYPE, JSON.STRLEN, JSON.OBJKEYS, JSON.OBJLEN, JSON.ARRLEN,
    JSON.ARRINDEX, JSON.RESP, FT.SEARCH, FT.AGGREGATE, FT.INFO, FT._LIST, FT.EXPLAIN,
    TS.GET, TS.MGET, TS.RANGE, TS.REVRANGE, TS.MRANGE, TS.MREVRANGE, TS.INFO, TS.QUERYINDEX,
    BF.EXISTS, BF.MEXISTS, BF.INFO, CF.EXISTS, CF.MEXISTS, CF.COUNT, CF.INFO
    """
)

# Commands with no effect on data that Redis does not flag readonly.
NO_EFFECT: frozenset[str] = _names(
    """
    PING, ECHO, TIME, INFO, LASTSAVE, ROLE, COMMAND, COMMAND COUNT, COMMAND DOCS,
    COMMAND INFO, COMMAND LIST, CLIENT GETNAME, CLIENT ID, CLIENT INFO, CLIENT LIST,
    CONFIG GET, PUBSUB CHANNELS, PUBSUB NUMPAT, PUBSUB NUMSUB, PUBSUB SHARDCHANNELS,
    PUBSUB SHARDNUMSUB, SCRIPT EXISTS, FUNCTION LIST, FUNCTION STATS, SLOWLOG GET,
    SLOWLOG LEN, MEMORY STATS, ACL WHOAMI, ACL LIST, ACL USERS, ACL CAT, ACL GETUSER,
    CLUSTER INFO, CLUSTER NODES, CLUSTER SLOTS, CLUSTER SHARDS, CLUSTER MYID, CLUSTER KEYSLOT
    """
)

SAFE_TO_REPEAT: frozenset[str] = READONLY | NO_EFFECT

# Where a blocking command carries its block time: (argument index or -1 for last, unit).
BLOCKING: dict[str, tuple[int, float]] = {
    "BLPOP": (-1, 1.0),
    "BRPOP": (-1, 1.0),
    "BRPOPLPUSH": (-1, 1.0),
    "BLMOVE": (-1, 1.0),
    "BZPOPMIN": (-1, 1.0),
    "BZPOPMAX": (-1, 1.0),
    "BLMPOP": (1, 1.0),
    "BZMPOP": (1, 1.0),
    "WAIT": (-1, 0.001),
    "WAITAOF": (-1, 0.001),
    # XREAD / XREADGROUP carry "BLOCK <ms>" anywhere before STREAMS.
    "XREAD": (0, 0.001),
    "XREADGROUP": (0, 0.001),
}

# Commands after which a connection holds session state another user must not inherit.
# Bits: which state they set (or, for the clearing commands, clear).
MULTI = 1
WATCH = 2
DB = 4
STICKY = 8  # subscriptions, MONITOR, CLIENT TRACKING/REPLY, HELLO/AUTH/RESET: never reused

SESSION: dict[str, int] = {
    "MULTI": MULTI,
    "WATCH": WATCH,
    "SELECT": DB,
    "SUBSCRIBE": STICKY,
    "PSUBSCRIBE": STICKY,
    "SSUBSCRIBE": STICKY,
    "MONITOR": STICKY,
    "CLIENT TRACKING": STICKY,
    "CLIENT REPLY": STICKY,
    "CLIENT SETNAME": STICKY,
    "CLIENT NO-EVICT": STICKY,
    "CLIENT NO-TOUCH": STICKY,
    "HELLO": STICKY,
    "AUTH": STICKY,
    "RESET": STICKY,
    "READONLY": STICKY,
    "READWRITE": STICKY,
    "CLIENT": STICKY,
}
CLEARS: dict[str, int] = {
    "EXEC": MULTI | WATCH,
    "DISCARD": MULTI | WATCH,
    "UNWATCH": WATCH,
}
