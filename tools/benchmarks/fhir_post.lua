-- wrk script for tools/bench fhir: POSTs a screening QuestionnaireResponse (the body in
-- BENCH_FHIR_BODY) to /fhir/QuestionnaireResponse, each request with its own identifier so
-- every one is a new screening (validated, mapped and durably committed), never a resend.
local body_file = os.getenv("BENCH_FHIR_BODY")
local f = assert(io.open(body_file, "r"))
local template = f:read("*a")
f:close()
-- The identifier value becomes "{{ID}}", filled in per request.
template = template:gsub('"value"%s*:%s*"QR%-A%-0001"', '"value": "{{ID}}"', 1)
assert(template:find("{{ID}}", 1, true), "the body has no identifier value QR-A-0001 to vary")

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
  local body = template:gsub("{{ID}}", id, 1)
  return wrk.format(nil, "/fhir/QuestionnaireResponse", nil, body)
end

local non_2xx = 0
function response(status, headers, body)
  if status ~= 201 then
    non_2xx = non_2xx + 1
    if non_2xx <= 3 then io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n") end
  end
end
