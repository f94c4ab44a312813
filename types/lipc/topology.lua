---@meta lipc.topology
-- luacheck: ignore
-- Editor types for require "lipc.topology" (see types/lipc.lua).

---Topologies: pipelines and graphs of processes, wired and cleaned up.
---@class lipc.topologylib
local topology = {}

---A pipeline of stages (argv tables or functions(inp, out)), with stdin =, stdout = (or "capture"), grace =.
---@param spec table the stages 1..n and the options
---@return lipc.topology.pipeline
---@see topology.md
function topology.pipeline(spec) end

---An empty graph: add nodes and links, then run it.
---@return lipc.topology.graph
---@see topology.md
function topology.graph() end

---A pipeline made by topology.pipeline.
---@class lipc.topology.pipeline
local pipeline = {}

---Start every stage and wait for all: one result per stage, results.ok, results.output.
---@param timeout? number
---@return table|nil results
---@return string? err
---@return integer? errno
---@see topology.md
function pipeline:run(timeout) end

---A graph made by topology.graph.
---@class lipc.topology.graph
local graph = {}

---Add a node: a function called with its channels and a context, or an argv table.
---@param name string
---@param body function|table
---@param opts? {host?: string}
---@return lipc.topology.graph
---@see topology.md
function graph:node(name, body, opts) end

---Link two nodes over a transport: via = "pipe", "fifo", "socketpair", "unix", "tcp", "mq", "msg", "ring".
---@param from string
---@param to string
---@param opts? {via?: string}
---@return lipc.topology.graph
---@see topology.md
function graph:link(from, to, opts) end

---Run the graph: results keyed by node name, and true when every node exited 0.
---@param timeout? number
---@param opts? {host?: string, grace?: number}
---@return table|nil results
---@return boolean|string ok or the error message
---@return integer? errno
---@see topology.md
function graph:run(timeout, opts) end

---The Graphviz text of the graph.
---@return string
---@see topology.md
function graph:dot() end

return topology
