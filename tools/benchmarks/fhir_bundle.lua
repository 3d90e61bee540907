-- wrk script for tools/bench fhir: POSTs a FHIR transaction Bundle (a Patient by conditional
-- create, and a Hunger Vital Sign QuestionnaireResponse for it; the body in BENCH_FHIR_BUNDLE)
-- to /fhir, with new ids in every request (patient MRN, screening and Bundle identifiers, the
-- entries' urn:uuid fullUrls), so each is a new family and a new screening, never a resend.
-- Answers other than the expected one (BENCH_FHIR_EXPECT, default 200) are reported on stderr;
-- wrk itself counts the non-2xx ones.
local body_file = os.getenv("BENCH_FHIR_BUNDLE")
local expect = tonumber(os.getenv("BENCH_FHIR_EXPECT") or "200")
local f = assert(io.open(body_file, "r"))
local template = f:read("*a")
f:close()
assert(template:find("{{ID}}", 1, true), "the Bundle template has no {{ID}} to vary")

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/fhir+json"
  wrk.headers["Prefer"] = "return=minimal"
end

function request()
  counter = counter + 1
  local id = string.format("bench-%d-%d-%d", os.time(), thread_id, counter)
  local serial = thread_id * 100000000 + counter
  local body = template:gsub("{{ID}}", id)
  body = body:gsub("{{PATIENT_UUID}}", string.format("%08x-0000-4000-8000-%012x", os.time() % 4294967296, serial))
  body = body:gsub("{{QR_UUID}}", string.format("%08x-0001-4000-8000-%012x", os.time() % 4294967296, serial))
  return wrk.format(nil, "/fhir", nil, body)
end

local unexpected = 0
function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
    if unexpected <= 3 then io.stderr:write("unexpected status " .. status .. ": " .. body:sub(1, 400) .. "\n") end
  end
end

