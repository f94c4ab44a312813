--- report.lua - the statistics and report of bench/run.sh.
-- Usage: lua5.4 bench/lib/report.lua RESULTS OUTDIR
-- RESULTS holds, for every program run, a line `run <pass> <impl> <name> <status>`
-- followed by that program's output; the lines that count are
--   metric <key> <value> <unit> <lower|higher> [impl]
--   target <key> <text>            (e.g. "<=1.15", compared with the ratio lipc/c)
-- The optional sixth field of a metric line, or a key suffix "@impl", lets one
-- program report several implementations itself (e.g. `metric shm_rtt_median
-- 1.2 us lower c` or `metric codec_us@cjson 3.1 us lower`).
-- Prints a table, writes OUTDIR/report.md, OUTDIR/rtt.dat and OUTDIR/rtt.gp.

local results_file, outdir = arg[1], arg[2]
assert(results_file and outdir, "usage: report.lua RESULTS OUTDIR")

local IMPL_ORDER = { c = 1, lipc = 2, py = 3 }
local IMPL_TITLE = { c = "raw C", lipc = "lipc", py = "Python" }

local metrics, order = {}, {}   -- key -> { unit, dir, name, vals = { impl = { pass = v } } }
local targets = {}              -- key -> text
local impls_seen = {}
local failures = {}

--- The metric record of key, created on first sight.
local function metric(key, unit, dir, name)
  local m = metrics[key]
  if not m then
    m = { key = key, unit = unit, dir = dir, name = name, vals = {} }
    metrics[key] = m
    order[#order + 1] = key
  end
  return m
end

local pass, impl, name = 0, "?", "?"
for line in io.lines(results_file) do
  local w = {}
  for word in line:gmatch("%S+") do w[#w + 1] = word end
  if w[1] == "run" then
    pass, impl, name = tonumber(w[2]), w[3], w[4]
    if w[5] ~= "ok" then failures[#failures + 1] = ("%s (%s, pass %d): %s"):format(name, impl, pass, w[5]) end
  elseif w[1] == "metric" and tonumber(w[3]) then
    -- the implementation: 6th field, or a key suffix "@impl", or the program's own
    local key, suffix = w[2]:match("^(.-)@([%w_]+)$")
    local m = metric(key or w[2], w[4] or "", w[5] or "lower", name)
    local im = w[6] or suffix or impl
    impls_seen[im] = true
    m.vals[im] = m.vals[im] or {}
    m.vals[im][pass] = tonumber(w[3])
  elseif w[1] == "target" and w[2] then
    targets[w[2]] = line:match("^target%s+%S+%s+(.-)%s*$")
  end
end

--- The median of a list of numbers (nil when empty).
local function median(list)
  if #list == 0 then return nil end
  table.sort(list)
  local n = #list
  if n % 2 == 1 then return list[(n + 1) // 2] end
  return (list[n // 2] + list[n // 2 + 1]) / 2
end

--- Median of the values of one implementation over the passes.
local function impl_median(m, im)
  local list = {}
  for _, v in pairs(m.vals[im] or {}) do list[#list + 1] = v end
  return median(list)
end

--- Median over the passes of the per-pass ratio im/c.
local function ratio(m, im)
  local list = {}
  for p, v in pairs(m.vals[im] or {}) do
    local base = (m.vals.c or {})[p]
    if base and base ~= 0 then list[#list + 1] = v / base end
  end
  return median(list)
end

--- The best value of one implementation over the passes (min for lower, max for higher).
local function impl_best(m, im)
  local best
  for _, v in pairs(m.vals[im] or {}) do
    if not best or (m.dir == "higher" and v > best) or (m.dir ~= "higher" and v < best) then best = v end
  end
  return best
end

--- PASS, MISS or "" for a target text like "<=1.15" and a ratio.
local function verdict(text, r)
  if not text or not r then return "" end
  local op, num = text:match("^%s*([<>]=?)%s*([%d.]+)")
  num = tonumber(num)
  if not op or not num then return "" end
  local ok = (op == "<=" and r <= num) or (op == "<" and r < num)
    or (op == ">=" and r >= num) or (op == ">" and r > num)
  return ok and "PASS" or "MISS"
end

local impls = {}
for im in pairs(impls_seen) do impls[#impls + 1] = im end
table.sort(impls, function(a, b)
  local x, y = IMPL_ORDER[a] or 9, IMPL_ORDER[b] or 9
  if x ~= y then return x < y end
  return a < b
end)
local others = {}
for _, im in ipairs(impls) do if im ~= "c" and im ~= "lipc" then others[#others + 1] = im end end

--- A number formatted for the tables ("-" when missing).
local function fmt(v, digits)
  if not v then return "-" end
  if math.abs(v) >= 1000 then return ("%.0f"):format(v) end
  return ("%." .. (digits or 3) .. "g"):format(v)
end

-- rows: one per metric
local rows = {}
for _, key in ipairs(order) do
  local m = metrics[key]
  local r = ratio(m, "lipc")
  local row = {
    key = key, unit = m.unit, dir = m.dir, bench = m.name,
    c = impl_median(m, "c"), lipc = impl_median(m, "lipc"), ratio = r,
    best = impl_best(m, "c") and impl_best(m, "lipc") and impl_best(m, "lipc") / impl_best(m, "c"),
    target = targets[key] or "", verdict = verdict(targets[key], r), others = {},
  }
  for _, im in ipairs(others) do
    row.others[im] = { v = impl_median(m, im), r = ratio(m, im) }
  end
  rows[#rows + 1] = row
end

-- console table
local head = { "metric", "unit", "raw C", "lipc", "lipc/C", "best" }
for _, im in ipairs(others) do head[#head + 1] = IMPL_TITLE[im] or im; head[#head + 1] = im .. "/C" end
head[#head + 1] = "target"
local lines = { head }
for _, row in ipairs(rows) do
  local l = { row.key, row.unit .. (row.dir == "higher" and " (more)" or " (less)"),
              fmt(row.c), fmt(row.lipc), row.ratio and ("%.2f"):format(row.ratio) or "-",
              row.best and ("%.2f"):format(row.best) or "-" }
  for _, im in ipairs(others) do
    l[#l + 1] = fmt(row.others[im].v)
    l[#l + 1] = row.others[im].r and ("%.2f"):format(row.others[im].r) or "-"
  end
  l[#l + 1] = (row.target .. " " .. row.verdict):gsub("^%s+", "")
  lines[#lines + 1] = l
end
local width = {}
for _, l in ipairs(lines) do
  for i, cell in ipairs(l) do width[i] = math.max(width[i] or 0, #cell) end
end
print()
for _, l in ipairs(lines) do
  local out = {}
  for i, cell in ipairs(l) do out[i] = cell .. (" "):rep(width[i] - #cell) end
  print((table.concat(out, "  "):gsub("%s+$", "")))
end
if #failures > 0 then
  print()
  for _, f in ipairs(failures) do print("FAILED: " .. f) end
end

-- report.md
local md = assert(io.open(outdir .. "/report.md", "w"))
md:write("# lipc benchmark report\n\n")
local uname = io.popen("uname -srm")
md:write(("Generated %s on %s (%s CPUs)%s.\n\n"):format(os.date("!%Y-%m-%d %H:%M UTC"),
  uname:read("l") or "?", io.popen("nproc"):read("l") or "?",
  os.getenv("BENCH_DESC") and "; " .. os.getenv("BENCH_DESC") or ""))
uname:close()
md:write("Medians over the passes; the ratio is the median of the per-pass ratios lipc / raw C ",
  "(for `lower` metrics below 1 is better than C, for `higher` metrics above 1 is). ",
  "`best` is the ratio of the best pass of each (fastest latency, highest throughput), ",
  "the steadier figure when other work shares the machine. Targets compare the ratio.\n\n")
local mdhead = { "metric", "unit", "better", "raw C", "lipc", "lipc / C", "best" }
for _, im in ipairs(others) do mdhead[#mdhead + 1] = IMPL_TITLE[im] or im; mdhead[#mdhead + 1] = im .. " / C" end
mdhead[#mdhead + 1] = "target"
md:write("| ", table.concat(mdhead, " | "), " |\n")
md:write(("|---"):rep(#mdhead), "|\n")
for _, row in ipairs(rows) do
  local l = { "`" .. row.key .. "`", row.unit, row.dir, fmt(row.c), fmt(row.lipc),
              row.ratio and ("%.2f"):format(row.ratio) or "-", row.best and ("%.2f"):format(row.best) or "-" }
  for _, im in ipairs(others) do
    l[#l + 1] = fmt(row.others[im].v)
    l[#l + 1] = row.others[im].r and ("%.2f"):format(row.others[im].r) or "-"
  end
  local t = row.target ~= "" and (row.target .. " " .. (row.verdict == "" and "" or "**" .. row.verdict .. "**")) or ""
  l[#l + 1] = t
  md:write("| ", table.concat(l, " | "), " |\n")
end
if #failures > 0 then
  md:write("\nFailed runs:\n\n")
  for _, f in ipairs(failures) do md:write("- ", f, "\n") end
end
md:write("\n![round trips](rtt.png)\n")
md:close()

-- rtt_*.dat / rtt.gp: the round-trip metrics as clustered bars, medians in one
-- panel, the other percentiles (p99...) in a second one
--- The value of implementation im in a row.
local function value_of(row, im)
  if im == "c" then return row.c elseif im == "lipc" then return row.lipc end
  return row.others[im] and row.others[im].v
end

local medians, tails = {}, {}
for _, row in ipairs(rows) do
  if row.key:find("rtt", 1, true) then
    if row.key:find("median", 1, true) then medians[#medians + 1] = row else tails[#tails + 1] = row end
  end
end
-- fastest first (by lipc's value, else C's), so the chart ranks the IPC kinds
local function speed(row) return row.lipc or row.c or math.huge end
table.sort(medians, function(a, b) return speed(a) < speed(b) end)
table.sort(tails, function(a, b) return speed(a) < speed(b) end)
-- the implementations with at least one round-trip value
local cols = {}
for _, im in ipairs(impls) do
  for _, row in ipairs(rows) do
    if row.key:find("rtt", 1, true) and value_of(row, im) then cols[#cols + 1] = im; break end
  end
end
if #cols == 0 then cols = { "c", "lipc" } end

--- Write one data file; returns its path.
local function write_dat(file, list, strip)
  local path = outdir .. "/" .. file
  local dat = assert(io.open(path, "w"))
  dat:write("# key ", table.concat(cols, " "), "\n")
  for _, row in ipairs(list) do
    local label = row.key:gsub("_rtt", ""):gsub("^rtt_", "")
    if strip then label = label:gsub(strip, "") end
    local l = { label }
    for _, im in ipairs(cols) do
      local v = value_of(row, im)
      l[#l + 1] = v and ("%.3f"):format(v) or "-"
    end
    dat:write(table.concat(l, " "), "\n")
  end
  dat:close()
  return path
end

local COLOR = { c = "#808080", lipc = "#1f77b4", py = "#ff7f0e" }
--- The gnuplot plot command of one panel.
local function plot_cmd(path)
  local plots = {}
  for i, im in ipairs(cols) do
    plots[#plots + 1] = ('"%s" using %d:xtic(1) title "%s" lc rgb "%s"'):format(path, i + 1,
      IMPL_TITLE[im] or im, COLOR[im] or "#2ca02c")
  end
  -- the value above each bar: cluster j, bar i sits at j + (i - (n-1)/2) / (n + gap)
  for i = 1, #cols do
    plots[#plots + 1] = ('"%s" using ($0 + %.4f):%d:(sprintf("%%.1f", $%d)) with labels offset 0,0.7 notitle')
      :format(path, (i - 1 - (#cols - 1) / 2) / (#cols + 1), i + 1, i + 1)
  end
  return "plot " .. table.concat(plots, ", \\\n     ") .. "\n"
end

local panels = {}
if #medians > 0 then
  panels[#panels + 1] = { title = "median round trip, fastest first (microseconds; lower is faster)",
                          path = write_dat("rtt_median.dat", medians, "_median"), n = #medians }
end
if #tails > 0 then
  panels[#panels + 1] = { title = "tail round trip: p99 and others (microseconds; lower is faster)",
                          path = write_dat("rtt_tail.dat", tails), n = #tails }
end
local nmax = 1
for _, p in ipairs(panels) do nmax = math.max(nmax, p.n) end
local gp = assert(io.open(outdir .. "/rtt.gp", "w"))
gp:write(([[
set terminal pngcairo size %d,%d noenhanced font "sans,10"
set output "%s/rtt.png"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left
set grid ytics
set yrange [0:*]
set ylabel "microseconds"
set xtics rotate by -25 nomirror
]]):format(math.max(900, 30 * nmax * (#cols + 1) + 200), 80 + 380 * math.max(1, #panels), outdir))
if #panels == 0 then
  gp:write('set title "no round-trip metrics"\nplot [0:1] NaN notitle\n')
else
  gp:write(("set multiplot layout %d,1\n"):format(#panels))
  for _, p in ipairs(panels) do
    gp:write(('set title "%s"\n'):format(p.title), plot_cmd(p.path))
  end
  gp:write("unset multiplot\n")
end
gp:close()
print()
print(("report: %s/report.md  chart: %s/rtt.png  (%d round-trip metrics)"):format(outdir, outdir,
  #medians + #tails))
