# dynoxide, the local stack's DynamoDB endpoint, as an image for docker-compose.yml: the npm package
# pinned in package.json and its lock, installed with `npm ci` as `make run` does. Its binary is
# static and built for Linux x86_64 only (compose asks for linux/amd64).
FROM node:22-bookworm-slim AS install
WORKDIR /opt/dynoxide
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM debian:bookworm-slim
COPY --from=install /opt/dynoxide/node_modules/@dynoxide/linux-x64/dynoxide /usr/local/bin/dynoxide
USER nobody
EXPOSE 8000
# In memory, as in `make run`: the data goes with the container.
ENTRYPOINT ["dynoxide", "serve", "--host", "0.0.0.0", "--port", "8000"]
