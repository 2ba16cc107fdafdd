# One image for every role: `wharf serve`, `wharf worker`, `wharf migrate`, `wharf all`.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's install script builds the SHA-256 addon when the image has a compiler, else Wharf uses hash-wasm.
COPY scripts ./scripts
COPY libs/hashing/binding.gyp ./libs/hashing/
COPY libs/hashing/native ./libs/hashing/native
COPY libs/hashing/scripts ./libs/hashing/scripts
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY libs ./libs
COPY services ./services
COPY migrations ./migrations
# Plain JavaScript under dist/: no TypeScript loader thread in the running processes.
RUN node scripts/build-js.mjs
ENV WHARF_HTTP_ADDR=0.0.0.0:5000
# Caps V8's young generation at 4 MiB semi-spaces: an API node under load peaks ~175 MiB instead
# of ~190-225 MiB, at the same request rates (bench/README.md, rss section).
ENV NODE_OPTIONS=--max-semi-space-size=4
EXPOSE 5000
# Embedded mode runs PostgreSQL as this unprivileged user.
USER node
ENTRYPOINT ["node", "dist/services/cli/main.js"]
CMD ["all"]
