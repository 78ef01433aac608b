# Multi-stage build: a static binary on a distroless base, running as a non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/wikigraph .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wikigraph /wikigraph
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/wikigraph", "healthcheck"]
ENTRYPOINT ["/wikigraph"]
