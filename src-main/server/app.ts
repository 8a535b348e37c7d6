import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type Answer, type ApiError, EVENT_NAMES, toApiError } from '../contract/index.ts';
import { callMethod, contentSecurityPolicy } from '../doors/index.ts';
import type { EngineHost } from '../engine/api/index.ts';
import { type ErrorCode, httpStatus } from '../engine/errors.ts';

export interface ServerOptions {
  engine: EngineHost;
  /** The built renderer; when absent the root page says how to build it. */
  rendererDir?: string;
  /** Defaults to a fresh random token per run. */
  token?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  logger?: boolean;
}

export interface RunningServer {
  app: FastifyInstance;
  port: number;
  token: string;
  /** The address to open: the token travels in the hash, which browsers never send to a server. */
  browserUrl: string;
  origin: string;
  close(): Promise<void>;
}

/** The only address the server binds: other machines on the network cannot reach it. */
export const HOST = '127.0.0.1';
export const UPLOAD_LIMIT = 50 * 1024 * 1024;

/** What fastify refuses before a route runs, all about the request body. */
const BODY_ERRORS: Partial<Record<number, ErrorCode>> = {
  400: 'invalid-argument',
  413: 'too-large',
  415: 'unsupported-media-type',
};

/** A browser sends the name it resolved; any other name is a DNS-rebinding page talking to us. */
const LOCAL_HOST = /^(?:127\.0\.0\.1|localhost)(?::\d{1,5})?$/i;

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

function fail(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(httpStatus(error.code)).send({ ok: false, error });
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return match?.[1];
}

function queryToken(request: FastifyRequest): string | undefined {
  const token = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof token === 'string' ? token : undefined;
}

/**
 * Which routes need the token, and where it travels: media and the event socket are fetched by <img> and
 * WebSocket, which cannot send headers, so they take ?token=. Only the renderer's static files are open.
 */
function needsToken(route: string): 'header' | 'query' | null {
  if (route === '/api/events' || route.startsWith('/media/')) return 'query';
  if (route.startsWith('/api/')) return 'header';
  return null;
}

/** `..`, backslashes and NULs have no business in any of our URLs, encoded or not. */
function hasTraversal(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true;
  }
  return /(?:^|[/\\])\.\.(?:[/\\]|$)/.test(decoded) || /[\\\0]/.test(decoded);
}

function originAllowed(origin: string | undefined): boolean {
  if (!origin) return true;
  try {
    return LOCAL_HOST.test(new URL(origin).host);
  } catch {
    return false;
  }
}

const placeholderPage = `<!doctype html><html><head><meta charset="utf-8"><title>Sagasu</title></head>
<body><p>The Sagasu window is not built yet: run <code>npm run build:renderer</code>, then reload.</p></body></html>`;

/** The contract over HTTP and WebSocket, plus the renderer's files: see DESIGN.md "HTTP protocol". */
export async function buildServer(options: ServerOptions & { token: string }): Promise<FastifyInstance> {
  const { engine, token } = options;
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 1024 * 1024 });
  const csp = contentSecurityPolicy({ connect: ['ws://127.0.0.1:*', 'ws://localhost:*'] });

  // Before the checks below: its onRequest hook marks an upgrade, so that when a check refuses one, its
  // onResponse destroys the raw socket (otherwise left open in CLOSE-WAIT, keeping close() from finishing).
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 } });

  app.addHook('onRequest', async (request, reply) => {
    if (!LOCAL_HOST.test(request.headers.host ?? '')) {
      return fail(reply, {
        code: 'forbidden',
        subject: 'host',
        message: `requests must name 127.0.0.1 or localhost, not ${JSON.stringify(request.headers.host ?? '')}`,
      });
    }
    if (!originAllowed(request.headers.origin)) {
      return fail(reply, {
        code: 'forbidden',
        subject: 'origin',
        message: `requests from ${request.headers.origin} are not accepted`,
      });
    }
    if (hasTraversal(request.url)) {
      return fail(reply, {
        code: 'invalid-argument',
        subject: 'path',
        message: 'paths may not leave the app',
      });
    }
    // By the route that matched, not the raw URL: the router decodes %-escapes ("/%61pi/…" is "/api/…").
    const where = needsToken(request.routeOptions.url ?? '');
    if (where === null) return;
    const given = where === 'header' ? bearer(request) : (queryToken(request) ?? bearer(request));
    if (!sameToken(given, token)) {
      return fail(reply, {
        code: 'unauthorized',
        subject: 'token',
        message: given ? 'the token is wrong (it changes on every start)' : 'the request carries no token',
      });
    }
  });

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
    const type = String(reply.getHeader('content-type') ?? '');
    if (type.startsWith('text/html')) {
      reply.header('Content-Security-Policy', csp);
      reply.header('Cache-Control', 'no-cache');
    }
    return payload;
  });

  // Only JSON (an empty body is an empty input, so `status` needs none) and, for the upload, image bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new Error('the body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });
  app.addContentTypeParser(
    /^image\/[\w.+-]+$/,
    { parseAs: 'buffer', bodyLimit: UPLOAD_LIMIT },
    (_request, body, done) => done(null, body),
  );

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    const status = error.statusCode ?? 500;
    const code = BODY_ERRORS[status] ?? 'internal';
    const subject = code === 'internal' ? 'sagasu' : 'body';
    const message =
      status === 415
        ? 'send the input as application/json (or an image/* body to /api/similar-upload)'
        : error.message;
    return reply.code(status).send({ ok: false, error: { code, subject, message } });
  });

  app.setNotFoundHandler((request, reply) =>
    fail(reply, { code: 'not-found', subject: request.url.split('?')[0] ?? '', message: 'no such page' }),
  );

  app.post<{ Params: { method: string } }>('/api/call/:method', async (request, reply) => {
    const answer = await callMethod(engine, request.params.method, request.body);
    return answer.ok ? reply.send(answer) : fail(reply, answer.error);
  });

  app.post('/api/similar-upload', { bodyLimit: UPLOAD_LIMIT }, async (request, reply) => {
    if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
      return fail(reply, {
        code: 'invalid-argument',
        subject: 'body',
        message: 'send the image bytes with Content-Type image/*',
      });
    }
    const query = request.query as Record<string, string | undefined>;
    const input: Record<string, unknown> = {};
    for (const key of ['k', 'offset'] as const) {
      if (query[key] !== undefined) input[key] = Number(query[key]);
    }
    const subtype = String(request.headers['content-type']).split('/')[1]?.split(/[;+]/)[0] ?? 'img';
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-upload-'));
    let answer: Answer;
    try {
      const path = join(dir, `upload.${subtype.replace(/[^\w]/g, '') || 'img'}`);
      await writeFile(path, request.body);
      answer = { ok: true, result: await engine.invoke('similar', { ...input, path } as never) };
    } catch (error) {
      answer = { ok: false, error: toApiError(error) };
    }
    // Gone before the answer leaves: the upload never outlives its request.
    await rm(dir, { recursive: true, force: true });
    return answer.ok ? reply.send(answer) : fail(reply, answer.error);
  });

  app.get<{ Params: { kind: string; id: string }; Querystring: { size?: string } }>(
    '/media/:kind/:id',
    async (request, reply) => {
      const { kind, id } = request.params;
      if (kind !== 'thumb' && kind !== 'full') {
        return fail(reply, { code: 'not-found', subject: 'kind', message: 'media is thumb or full' });
      }
      if (!/^[1-9]\d{0,14}$/.test(id)) {
        return fail(reply, { code: 'invalid-argument', subject: 'imageId', message: 'expected a photo id' });
      }
      let size: number | undefined;
      if (request.query.size !== undefined) {
        size = Number(request.query.size);
        if (!Number.isInteger(size) || size < 16 || size > 2048) {
          return fail(reply, {
            code: 'invalid-argument',
            subject: 'size',
            message: 'expected a whole number of pixels from 16 to 2048',
          });
        }
      }
      try {
        const media = await engine.media(Number(id), kind, size);
        return reply
          .type(media.type)
          .header('Cache-Control', 'private, max-age=3600')
          .header('Content-Security-Policy', "default-src 'none'")
          .send(media.bytes);
      } catch (error) {
        return fail(reply, toApiError(error));
      }
    },
  );

  app.get('/api/events', { websocket: true }, (socket) => {
    const off = EVENT_NAMES.map((event) =>
      engine.on(event, (payload) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ event, payload }));
      }),
    );
    socket.on('close', () => {
      for (const stop of off) stop();
    });
  });

  const rendererDir = options.rendererDir;
  if (rendererDir && existsSync(join(rendererDir, 'index.html'))) {
    await app.register(fastifyStatic, { root: rendererDir, index: ['index.html'], cacheControl: false });
  } else {
    app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(placeholderPage));
  }

  return app;
}

/** Starts the server on 127.0.0.1 (only) and reports where the browser should go. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const token = options.token ?? newToken();
  const app = await buildServer({ ...options, token });
  // Every socket, upgraded ones included (the HTTP server stops tracking those), so close() can end them.
  const sockets = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await app.listen({ host: HOST, port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0);
  const origin = `http://${HOST}:${port}`;
  return {
    app,
    port,
    token,
    origin,
    browserUrl: `${origin}/#token=${token}`,
    close: async () => {
      const closing = app.close();
      // A request still running or a socket a client never closed must not keep the process (and the
      // library lock) alive: once the server stops listening, whatever is left is cut.
      for (const socket of sockets) socket.destroy();
      await closing;
    },
  };
}
