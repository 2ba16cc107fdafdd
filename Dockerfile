# One image for every role: `wharf all` (embedded mode, the default command), `wharf serve`,
# `wharf worker`, `wharf migrate`, `wharf keys`. Build: docker build -t wharf:0.1.0 .
ARG NODE_VERSION=24.22.3

# The build stage has a compiler and Python (node-gyp), so the native SHA-256 addon is built
# against this Node's own headers; the build fails rather than ship the slower fallback.
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY libs/hashing/binding.gyp ./libs/hashing/
COPY libs/hashing/native ./libs/hashing/native
COPY libs/hashing/scripts ./libs/hashing/scripts
RUN npm ci --omit=dev --no-audit --no-fund && test -f libs/hashing/build/Release/wharf_sha256.node
COPY tsconfig.json ./
COPY bin ./bin
COPY libs ./libs
COPY services ./services
# Plain JavaScript under dist/: no TypeScript loader thread in the running processes.
RUN node scripts/build-js.mjs

FROM node:${NODE_VERSION}-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/libs/hashing/build/Release/wharf_sha256.node ./libs/hashing/build/Release/
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY migrations ./migrations
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# /data is embedded mode's data.dir (blobs and PostgreSQL), owned by the user Wharf runs as;
# /etc/wharf/auth holds the signing key and htpasswd that `wharf keys /etc/wharf/auth` writes.
RUN ln -s /app/bin/wharf.mjs /usr/local/bin/wharf \
 && mkdir -p /data /etc/wharf/auth && chown node:node /data /etc/wharf/auth
ENV WHARF_HTTP_ADDR=0.0.0.0:5000 \
    WHARF_DATA_DIR=/data
# Caps V8's young generation at 4 MiB semi-spaces: an API node under load peaks ~175 MiB instead
# of ~190-225 MiB, at the same request rates (bench/README.md, rss section).
ENV NODE_OPTIONS=--max-semi-space-size=4
VOLUME /data
EXPOSE 5000
# GET /healthz on the API port (WHARF_HTTP_ADDR); worker containers pass their worker.httpaddr URL.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/deploy/healthcheck.mjs"]
# Embedded mode runs PostgreSQL as this unprivileged user (initdb refuses root).
USER node
ENTRYPOINT ["wharf"]
CMD ["all"]
