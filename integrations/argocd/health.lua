-- Argo CD health check for alembic-operator.dev/DatabaseMigration (docs/gating.md).
-- Healthy only when the operator has observed the current generation and it succeeded, so a
-- sync wave that follows the migration never starts on the previous generation's success.
local hs = {}
local generation = obj.metadata and obj.metadata.generation or 0
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local ready, stalled = nil, nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then ready = condition end
    if condition.type == "Stalled" then stalled = condition end
  end
end
local message = status.message or ""
if status.phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = message
  return hs
end
if status.phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end
if status.phase == "Succeeded" and ready ~= nil and ready.status == "True"
    and (ready.observedGeneration == nil or ready.observedGeneration == generation) then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
hs.status = "Progressing"
hs.message = message
return hs
