-- wrk script for tools/bench fhir: POSTs the body in BENCH_FHIR_BODY to BENCH_FHIR_PATH
-- (default /fhir/QuestionnaireResponse) with new ids in every request, so each one is a new
-- screening (validated, mapped and durably committed), never a resend:
--   {{ID}}                           a unique id (identifier values, a patient's MRN);
--   {{PATIENT_UUID}}, {{QR_UUID}}    unique urn:uuid fullUrls of a transaction Bundle's entries.
-- A body without {{ID}} has its identifier value QR-A-0001 (the shared sample's) replaced.
-- Answers other than BENCH_FHIR_EXPECT (default 201) are reported on stderr; wrk itself counts
-- the non-2xx ones.
local body_file = os.getenv("BENCH_FHIR_BODY")
local path = os.getenv("BENCH_FHIR_PATH") or "/fhir/QuestionnaireResponse"
local expect = tonumber(os.getenv("BENCH_FHIR_EXPECT") or "201")
local f = assert(io.open(body_file, "r"))
local template = f:read("*a")
f:close()
if not template:find("{{ID}}", 1, true) then
  template = template:gsub('"value"%s*:%s*"QR%-A%-0001"', '"value": "{{ID}}"', 1)
end
assert(template:find("{{ID}}", 1, true), "the body has no {{ID}} nor identifier value QR-A-0001 to vary")

local counter = 0
local threads = {}
-- Per thread: its number (setup() sets the global in the thread's own Lua state; a local of
-- the same name would hide it) and random bytes, so that no two threads, nor two runs in the
-- same second, send the same ids (the gateway would answer a resend from its store).
thread_id = 0
local nonce = ""

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local urandom = assert(io.open("/dev/urandom", "rb"))
  nonce = urandom:read(6):gsub(".", function(c) return string.format("%02x", c:byte()) end)
  urandom:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/fhir+json"
  wrk.headers["Prefer"] = "return=minimal"
end

function request()
  counter = counter + 1
  local id = string.format("bench-%s-%d-%d", nonce, thread_id, counter)
  local serial = thread_id * 100000000 + counter
  local stamp = os.time() % 4294967296
  local body = template:gsub("{{ID}}", id)
  body = body:gsub("{{PATIENT_UUID}}", string.format("%08x-0000-4000-8000-%012x", stamp, serial))
  body = body:gsub("{{QR_UUID}}", string.format("%08x-0001-4000-8000-%012x", stamp, serial))
  return wrk.format(nil, path, nil, body)
end

local unexpected = 0
function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
    if unexpected <= 3 then io.stderr:write("unexpected status " .. status .. ": " .. body:sub(1, 400) .. "\n") end
  end
end
