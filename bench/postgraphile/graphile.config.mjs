// PostGraphile as a new user starts it: the amber preset, in production (GRAPHILE_ENV=production,
// set by cmd/bench), with the connection, schema, host and port from the command line. The only
// change from the defaults: no GraphiQL page (a production server serves only /graphql).
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  grafserv: { graphiql: false, watch: false },
  grafast: { explain: false },
};

export default preset;
