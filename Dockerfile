# syntax=docker/dockerfile:1
# The governor binary (subcommands: migrate, api, worker) in a small non-root image.
# Used by docker-compose.yml; checked by internal/deploy/compose_test.go (no Docker engine in CI).
#
#   docker build -t governor:local .

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/governor ./cmd/governor

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/governor /usr/local/bin/governor
# uid/gid 65532 ("nonroot" in distroless).
USER nonroot:nonroot
ENV GOVERNOR_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/governor"]
CMD ["api"]
