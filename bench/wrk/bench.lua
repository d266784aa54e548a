-- The wrk script of npm run bench (bench/wrk.ts runs it): builds each request from a plan and
-- checks every answer.
--
--   wrk -t1 -c16 -d6s --timeout 30s -s bench/wrk/bench.lua http://127.0.0.1:4000 -- <plan.lua>
--
-- The plan is a Lua file returning a table (bench/wrk.ts writes it at run time):
--   path, headers       every request: POST <path> with these headers
--   pick                optional { header = name, values = {...} }: that header gets one of the
--                       values, at random, per request (a token, an install id)
--   body                a list of JSON text pieces and slot numbers; a slot is filled per request:
--     random  { items }             one of the items (JSON texts), at random
--     cycle   { items }             the next item, in order
--     window  { items, size }       a JSON array of `size` consecutive items from a random start
--     unique  { prefix }            a JSON string never sent before: prefix .. thread .. "-" .. n
--                                   (the prefix carries a nonce of the run)
--     bulk    { prefix, size, windows, values, metadata }
--                                   a JSON array of `size` items {key, value, metadata}; the keys
--                                   are one of `windows` fixed windows of this thread, so batches
--                                   in flight at once never share part of a window
--     commit  { prefix, size, windows, values, metadata, namespaces }
--                                   a JSON array of `size` commit operations {put: {namespace, key,
--                                   value, metadata}}, keys as for bulk, namespaces in turn
--   failures            __typename values that count as failed answers
--   limit               optional: stop after this many answers per thread (prints "@@wrk-limit",
--                       on which bench/wrk.ts interrupts wrk so the run's duration is right)
--   seed                random seed (each thread adds its number)
--
-- An answer fails when its status is not 2xx, its body has "errors" (a GraphQL error), or it
-- carries a failure __typename. done() prints one line, "@@wrk-result <JSON>": answers, duration,
-- latency percentiles, failures by kind (with a sample body), socket errors and wrk's own CPU.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

local plan, headers, fixed, failures

-- Globals read by done() through thread:get().
answers = 0
kinds = {}
sample = nil

local counter = 0

local slots = {
  random = function(s)
    return s.items[math.random(#s.items)]
  end,
  cycle = function(s)
    return s.items[counter % #s.items + 1]
  end,
  window = function(s)
    local first = math.random(#s.items - s.size + 1)
    return "[" .. table.concat(s.items, ",", first, first + s.size - 1) .. "]"
  end,
  unique = function(s)
    return '"' .. s.prefix .. thread_id .. "-" .. counter .. '"'
  end,
  bulk = function(s)
    local keyPrefix = s.prefix .. thread_id .. "-" .. (counter % s.windows) .. "-"
    local items = {}
    for i = 1, s.size do
      local value = s.values[(counter * s.size + i) % #s.values + 1]
      items[i] = '{"key":"' .. keyPrefix .. i .. '","value":' .. value .. ',"metadata":' .. s.metadata .. "}"
    end
    return "[" .. table.concat(items, ",") .. "]"
  end,
  commit = function(s)
    local keyPrefix = s.prefix .. thread_id .. "-" .. (counter % s.windows) .. "-"
    local ops = {}
    for i = 1, s.size do
      local value = s.values[(counter * s.size + i) % #s.values + 1]
      local namespace = s.namespaces[(i - 1) % #s.namespaces + 1]
      ops[i] = '{"put":{"namespace":"' .. namespace .. '","key":"' .. keyPrefix .. i .. '","value":' .. value .. ',"metadata":' .. s.metadata .. "}}"
    end
    return "[" .. table.concat(ops, ",") .. "]"
  end,
}

local function build()
  local out = {}
  for i, piece in ipairs(plan.body) do
    if type(piece) == "number" then
      local s = plan.slots[piece]
      out[i] = slots[s.kind](s)
    else
      out[i] = piece
    end
  end
  return table.concat(out)
end

function init(args)
  plan = dofile(args[1])
  math.randomseed(plan.seed + thread_id)
  headers = {}
  for name, value in pairs(plan.headers) do
    headers[name] = value
  end
  failures = {}
  for _, name in ipairs(plan.failures) do
    failures[name] = true
  end
  if #plan.slots == 0 and plan.pick == nil then
    fixed = wrk.format("POST", plan.path, headers, build())
  end
end

function request()
  counter = counter + 1
  if fixed then
    return fixed
  end
  if plan.pick then
    headers[plan.pick.header] = plan.pick.values[math.random(#plan.pick.values)]
  end
  return wrk.format("POST", plan.path, headers, build())
end

local function failure(status, body)
  if status < 200 or status > 299 then
    return "http_" .. status
  end
  if body:find('"errors"', 1, true) then
    return "graphql_" .. (body:match('"code":"([%w_]+)"') or "error")
  end
  -- A plain find first: the pattern scan of a 100-record answer cost wrk ~450 µs per answer (on the
  -- CPU PostgreSQL shares), and reads carry no __typename at all.
  if next(failures) and body:find('"__typename":"', 1, true) then
    for name in body:gmatch('"__typename":"(%w+)"') do
      if failures[name] then
        return name
      end
    end
  end
  return nil
end

function response(status, _, body)
  answers = answers + 1
  local kind = failure(status, body)
  if kind then
    kinds[kind] = (kinds[kind] or 0) + 1
    sample = sample or (kind .. ": " .. body:sub(1, 300))
  end
  if plan.limit and answers == plan.limit then
    wrk.thread:stop()
    io.write("@@wrk-limit\n")
    io.flush()
  end
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function json_counts(t)
  local parts = {}
  for name, n in pairs(t) do
    table.insert(parts, json_string(name) .. ":" .. n)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, _)
  local total, failed, first = 0, {}, nil
  for _, thread in ipairs(threads) do
    total = total + (thread:get("answers") or 0)
    for name, n in pairs(thread:get("kinds") or {}) do
      failed[name] = (failed[name] or 0) + n
    end
    first = first or thread:get("sample")
  end
  local socket = {}
  for _, name in ipairs({ "connect", "read", "write", "timeout" }) do
    if summary.errors[name] > 0 then
      socket[name] = summary.errors[name]
    end
  end
  io.write(
    "@@wrk-result {",
    '"requests":', summary.requests,
    ',"answers":', total,
    ',"durationUs":', summary.duration,
    ',"latencyUs":{"p50":', latency:percentile(50), ',"p95":', latency:percentile(95), ',"p99":', latency:percentile(99), "}",
    ',"failures":', json_counts(failed),
    ',"socketErrors":', json_counts(socket),
    ',"sample":', first and json_string(first) or "null",
    ',"cpuSeconds":', os.clock(),
    "}\n"
  )
end
