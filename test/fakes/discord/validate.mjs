// validate.mjs - request body validation for the fake Discord.
//
// Schemas come from the discord-api-spec package (zod/mini, generated from
// Discord's OpenAPI description). Inline request bodies the package does not
// export (member PATCH, bulk delete) are rebuilt here from the spec's
// constraints. The documented spec-vs-docs discrepancies are patched
// (shared/reference/discord-protocol.md section 2): permissions as strings,
// message content 2000 (docs) instead of 4000 (spec), modal components 1..5,
// unban without a body. Failures are reported in Discord's 50035 shape.
import * as S from 'discord-api-spec/zod';
import * as z from 'zod/mini';

const Snowflake = S.SnowflakeTypeSchema;
/** Discord accepts permissions as a decimal string (documented) or a number (spec). */
const Permissions = z.union([
  z.number().check(z.minimum(0), z.maximum(18014398509481984)),
  z.string().check(z.regex(/^(0|[1-9][0-9]{0,16})$/)),
]);

const CommandUpdate = z.extend(S.ApplicationCommandUpdateRequestSchema, {
  default_member_permissions: z.nullish(Permissions),
});

export const schemas = {
  MessageCreateRequest: S.MessageCreateRequestSchema,
  MessageEditRequestPartial: S.MessageEditRequestPartialSchema,
  IncomingWebhookRequestPartial: S.IncomingWebhookRequestPartialSchema,
  IncomingWebhookUpdateRequestPartial: S.IncomingWebhookUpdateRequestPartialSchema,
  BanUserFromGuildRequest: S.BanUserFromGuildRequestSchema,
  UnbanUserFromGuildRequest: S.UnbanUserFromGuildRequestSchema,
  CreateRoleRequest: z.extend(S.CreateRoleRequestSchema, { permissions: z.nullish(Permissions) }),
  UpdateRoleRequestPartial: z.extend(S.UpdateRoleRequestPartialSchema, { permissions: z.nullish(Permissions) }),
  ApplicationCommandUpdateRequestList: z.nullable(z.array(CommandUpdate).check(z.maxLength(130))),
  // inline in the spec: PATCH /guilds/{guild_id}/members/{user_id}
  UpdateGuildMemberRequest: z.object({
    nick: z.nullish(z.string().check(z.maxLength(32))),
    roles: z.nullish(z.array(z.nullable(Snowflake)).check(z.maxLength(350))),
    mute: z.nullish(z.boolean()),
    deaf: z.nullish(z.boolean()),
    channel_id: z.nullish(Snowflake),
    communication_disabled_until: z.nullish(z.iso.datetime({ offset: true })),
    flags: z.nullish(z.int()),
  }),
  // inline in the spec: POST /channels/{channel_id}/messages/bulk-delete
  BulkDeleteMessagesRequest: z.object({
    messages: z.array(Snowflake).check(z.minLength(2), z.maxLength(100)),
  }),
};

/** Callback request anyOf, dispatched on `type` so the errors name the right branch. */
const CALLBACK_BY_TYPE = {
  1: S.PongInteractionCallbackRequestSchema,
  4: S.CreateMessageInteractionCallbackRequestSchema,
  5: S.CreateMessageInteractionCallbackRequestSchema,
  6: S.UpdateMessageInteractionCallbackRequestSchema,
  7: S.UpdateMessageInteractionCallbackRequestSchema,
  8: S.ApplicationCommandAutocompleteCallbackRequestSchema,
  9: S.ModalInteractionCallbackRequestSchema,
  12: S.LaunchActivityInteractionCallbackRequestSchema,
  13: S.SocialLayerSKUPurchaseEligibilityInteractionCallbackRequestSchema,
};

// ------------------------------------------------------------ error mapping
const TYPE_ERRORS = {
  string: ['BASE_TYPE_STRING', () => 'Must be a string.'],
  number: ['NUMBER_TYPE_COERCE', (v) => `Value "${fmt(v)}" is not int.`],
  int: ['NUMBER_TYPE_COERCE', (v) => `Value "${fmt(v)}" is not int.`],
  boolean: ['BASE_TYPE_BOOLEAN', () => 'Must be either true or false.'],
  array: ['BASE_TYPE_ARRAY', () => 'Must be an array.'],
  object: ['DICT_TYPE_CONVERT', () => 'Only dictionaries may be used in a DictType'],
};

function fmt(v) {
  if (typeof v === 'string') return v.length > 40 ? `${v.slice(0, 40)}...` : v;
  try { return JSON.stringify(v); } catch { return String(v); }
}

function issueToDiscord(issue) {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return { code: 'BASE_TYPE_REQUIRED', message: 'This field is required' };
      const t = TYPE_ERRORS[issue.expected];
      if (t) return { code: t[0], message: t[1](issue.input) };
      return { code: 'BASE_TYPE_BAD', message: `Expected ${issue.expected}.` };
    }
    case 'too_big':
      if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
        return { code: 'NUMBER_TYPE_MAX', message: `int value should be less than or equal to ${issue.maximum}.` };
      }
      return { code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${issue.maximum} or fewer in length.` };
    case 'too_small':
      if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
        return { code: 'NUMBER_TYPE_MIN', message: `int value should be greater than or equal to ${issue.minimum}.` };
      }
      return { code: 'BASE_TYPE_MIN_LENGTH', message: `Must be ${issue.minimum} or more in length.` };
    case 'invalid_value':
      return { code: 'BASE_TYPE_CHOICES', message: `Value must be one of {${(issue.values ?? []).map(fmt).join(', ')}}.` };
    case 'invalid_format':
      if (issue.format === 'regex' && String(issue.pattern) === '/^(0|[1-9][0-9]*)$/') {
        return { code: 'NUMBER_TYPE_COERCE', message: `Value "${fmt(issue.input)}" is not snowflake.` };
      }
      if (issue.format === 'datetime') {
        return { code: 'DATE_TIME_TYPE_PARSE', message: `Could not parse ${fmt(issue.input)}. Should be ISO8601.` };
      }
      if (issue.format === 'url') return { code: 'URL_TYPE_INVALID_URL', message: 'Not a well formed URL.' };
      return { code: 'STRING_TYPE_REGEX', message: `String value did not match validation regex ${issue.pattern ?? ''}.`.replace(' .', '.') };
    case 'custom':
      return { code: issue.params?.code ?? 'BASE_TYPE_BAD', message: issue.message };
    default:
      return { code: `BASE_TYPE_${String(issue.code).toUpperCase()}`, message: issue.message ?? 'Invalid value.' };
  }
}

/** Flattens zod issues (descending into the closest union branch). */
function flatten(issues, prefix = []) {
  const out = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && Array.isArray(issue.errors) && issue.errors.length) {
      // the branch with the fewest issues is the one the sender meant
      const best = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
      if (best.length) { out.push(...flatten(best, path)); continue; }
      out.push({ path, code: 'BASE_TYPE_BAD', message: 'Value matches none of the allowed types.' });
      continue;
    }
    out.push({ path, ...issueToDiscord(issue) });
  }
  return out;
}

export function issue(path, code, message) {
  return { path, code, message };
}

/** Flat issues -> Discord's nested `errors` object. */
export function toDiscordErrors(list) {
  const errors = {};
  for (const e of list) {
    let node = errors;
    for (const seg of e.path) node = node[String(seg)] ??= {};
    (node._errors ??= []).push({ code: e.code, message: e.message });
  }
  return errors;
}

/** Flat list for the request log: [{path: 'a.0.b', code, message}]. */
export function toFlat(list) {
  return list.map((e) => ({ path: e.path.join('.'), code: e.code, message: e.message }));
}

function run(schema, body) {
  const r = schema.safeParse(body, { reportInput: true });
  return r.success ? [] : flatten(r.error.issues);
}

// ------------------------------------------------------ cross-field checks
const MESSAGE_BODY_KEYS = ['content', 'embeds', 'components', 'attachments', 'poll', 'sticker_ids', 'files'];

function nonEmpty(v) {
  if (v === undefined || v === null) return false;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** true when a message (or a create body) has something to show. */
export function messageHasBody(m) {
  return MESSAGE_BODY_KEYS.some((k) => nonEmpty(m?.[k]));
}

function embedChars(e) {
  let n = 0;
  n += (e.title ?? '').length + (e.description ?? '').length;
  n += (e.footer?.text ?? '').length + (e.author?.name ?? '').length;
  for (const f of e.fields ?? []) n += (f.name ?? '').length + (f.value ?? '').length;
  return n;
}

/** Docs rules the spec does not encode, for any message-like body at path prefix. */
function messageRules(body, prefix, { contentMax = 2000 } = {}) {
  const out = [];
  if (!body || typeof body !== 'object') return out;
  if (typeof body.content === 'string' && [...body.content].length > contentMax) {
    out.push(issue([...prefix, 'content'], 'BASE_TYPE_MAX_LENGTH', `Must be ${contentMax} or fewer in length.`));
  }
  if (Array.isArray(body.embeds)) {
    const total = body.embeds.reduce((a, e) => a + (e && typeof e === 'object' ? embedChars(e) : 0), 0);
    if (total > 6000) out.push(issue([...prefix, 'embeds'], 'MAX_EMBED_SIZE_EXCEEDED', 'Embed size exceeds maximum size of 6000'));
  }
  const flags = typeof body.flags === 'number' ? body.flags : 0;
  if (flags & 32768) {
    for (const k of ['content', 'embeds', 'poll', 'sticker_ids']) {
      if (nonEmpty(body[k])) {
        out.push(issue([...prefix, k], 'MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2',
          'The \'content\', \'embeds\', \'sticker_ids\' and \'poll\' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2'));
      }
    }
  }
  // non-link buttons need a custom_id; link buttons need a url (docs)
  const walk = (comps, p) => {
    if (!Array.isArray(comps)) return;
    comps.forEach((c, i) => {
      if (!c || typeof c !== 'object') return;
      if (c.type === 2) {
        if (c.style === 5 && !c.url) out.push(issue([...p, i, 'url'], 'BASE_TYPE_REQUIRED', 'This field is required'));
        if (c.style !== 5 && c.style !== 6 && !c.custom_id) out.push(issue([...p, i, 'custom_id'], 'BASE_TYPE_REQUIRED', 'This field is required'));
      }
      if (Array.isArray(c.components)) walk(c.components, [...p, i, 'components']);
      if (c.accessory) walk([c.accessory], [...p, i, 'accessory']);
    });
  };
  walk(body.components, [...prefix, 'components']);
  return out;
}

/**
 * Validates a parsed JSON body for a route's schema name. Returns
 * {issues: [...]} (flat, empty when valid) and {empty: true} when Discord
 * would answer 50006 "Cannot send an empty message".
 */
export function validateBody(name, body, opts = {}) {
  switch (name) {
    case 'MessageCreateRequest': {
      const issues = [...run(schemas.MessageCreateRequest, body), ...messageRules(body, [])];
      return { issues, empty: issues.length === 0 && !messageHasBody(body) };
    }
    case 'MessageEditRequestPartial':
      return { issues: [...run(schemas.MessageEditRequestPartial, body), ...messageRules(body, [])] };
    case 'IncomingWebhookRequestPartial': {
      // execute webhook: anyOf IncomingWebhookRequestPartial / IncomingWebhookUpdateRequestPartial
      let issues = run(schemas.IncomingWebhookRequestPartial, body);
      if (issues.length) {
        const alt = run(schemas.IncomingWebhookUpdateRequestPartial, body);
        if (alt.length < issues.length) issues = alt;
      }
      issues.push(...messageRules(body, []));
      return { issues, empty: issues.length === 0 && !messageHasBody(body) };
    }
    case 'IncomingWebhookUpdateRequestPartial':
      return { issues: [...run(schemas.IncomingWebhookUpdateRequestPartial, body), ...messageRules(body, [])] };
    case 'InteractionCallbackRequest': {
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        return { issues: [issue([], 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType')] };
      }
      const schema = CALLBACK_BY_TYPE[body.type];
      if (!schema) {
        const code = body.type === undefined ? 'BASE_TYPE_REQUIRED' : 'BASE_TYPE_CHOICES';
        const msg = body.type === undefined ? 'This field is required'
          : `Value must be one of {${Object.keys(CALLBACK_BY_TYPE).join(', ')}}.`;
        return { issues: [issue(['type'], code, msg)] };
      }
      const issues = run(schema, body);
      if ([4, 7].includes(body.type) && body.data) issues.push(...messageRules(body.data, ['data']));
      if (body.type === 9 && Array.isArray(body.data?.components)
        && body.data.components.length > 5) {
        issues.push(issue(['data', 'components'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 5 in length.'));
      }
      const empty = issues.length === 0 && body.type === 4 && !messageHasBody(body.data);
      return { issues, empty };
    }
    case 'UnbanUserFromGuildRequest':
      // discrepancy 4: the docs give unban no body; an absent body is fine
      return { issues: body === undefined ? [] : run(schemas.UnbanUserFromGuildRequest, body) };
    case 'BanUserFromGuildRequest':
      return { issues: body === undefined ? [] : run(schemas.BanUserFromGuildRequest, body) };
    case 'BulkDeleteMessagesRequest': {
      const issues = run(schemas.BulkDeleteMessagesRequest, body);
      if (!issues.length && new Set(body.messages).size !== body.messages.length) {
        issues.push(issue(['messages'], 'BASE_TYPE_DUPLICATES', 'Duplicate message ids are not allowed.'));
      }
      return { issues };
    }
    case 'UpdateGuildMemberRequest': {
      const issues = run(schemas.UpdateGuildMemberRequest, body);
      if (!issues.length && Array.isArray(body.roles) && new Set(body.roles).size !== body.roles.length) {
        issues.push(issue(['roles'], 'BASE_TYPE_DUPLICATES', 'Duplicate role ids are not allowed.'));
      }
      if (!issues.length && typeof body.communication_disabled_until === 'string') {
        const t = Date.parse(body.communication_disabled_until);
        const now = opts.now ?? Date.now();
        if (t > now + 28 * 86400 * 1000 + 60 * 1000) {
          issues.push(issue(['communication_disabled_until'], 'COMMUNICATION_DISABLED_UNTIL_TOO_LARGE',
            'Timeout may not be more than 28 days in the future.'));
        }
      }
      return { issues };
    }
    case 'ApplicationCommandUpdateRequestList':
      return { issues: run(schemas.ApplicationCommandUpdateRequestList, body) };
    case 'CreateRoleRequest':
    case 'UpdateRoleRequestPartial':
      return { issues: run(schemas[name], body ?? {}) };
    default:
      throw new Error(`validate: no schema named ${name}`);
  }
}
