/**
 * Preloaded (`node --import`) into each `wrangler dev` that dev/bridge.ts starts. Its stdin is a
 * pipe from the process that started it, which closes when that process ends, however it ends
 * (a crash, SIGKILL, an interrupted test run): the whole process group, wrangler and its workerd,
 * then goes with it.
 */
const exitWithGroup = () => process.kill(-process.pid, "SIGKILL");
process.stdin.on("end", exitWithGroup);
process.stdin.on("error", exitWithGroup);
process.stdin.resume();
