-- wrk script (benches/load.sh FRESH_IDS=1). Every request a new sampled trace: fresh ids in both formats.
local hex = "0123456789abcdef"
local function rand_hex(n)
  local t = {}
  for i = 1, n do local r = math.random(16); t[i] = hex:sub(r, r) end
  return table.concat(t)
end
request = function()
  local tid, sid = rand_hex(32), rand_hex(16)
  wrk.headers["uber-trace-id"] = tid .. ":" .. sid .. ":0:1"
  wrk.headers["traceparent"] = "00-" .. tid .. "-" .. sid .. "-01"
  return wrk.format(nil)
end
