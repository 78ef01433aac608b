package api

import (
	"github.com/wikigraph/wikigraph/graph"
	"github.com/wikigraph/wikigraph/internal/items"
	"github.com/wikigraph/wikigraph/internal/paging"
	"github.com/wikigraph/wikigraph/internal/users"
)

// countCost is what totalCount adds: a count over the filter.
const countCost = 10

// complexity costs list fields by the number of elements they may return, so a nested page of
// pages costs the product of their sizes. Arguments out of range are costed at the largest page
// (they are refused later anyway).
func complexity() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	page := func(first, last *int) int {
		n := paging.DefaultSize
		if first != nil {
			n = *first
		} else if last != nil {
			n = *last
		}
		return min(max(n, 1), paging.MaxSize)
	}
	list := func(limit int) int { return min(max(limit, 1), users.MaxPageSize) }
	c.Query.Users = func(child, _ int, limit int) int { return 1 + list(limit)*child }
	c.Query.Items = func(child, _ int, limit int, _ *int64) int { return 1 + list(limit)*child }
	c.Query.UsersConnection = func(child int, first *int, _ *string, last *int, _ *string, _ *users.Filter, _ *users.Order) int {
		return 1 + page(first, last)*child
	}
	c.Query.ItemsConnection = func(child int, first *int, _ *string, last *int, _ *string, _ *items.Filter, _ *items.Order) int {
		return 1 + page(first, last)*child
	}
	c.User.Items = func(child int, first *int, _ *string, last *int, _ *string, _ *items.Filter, _ *items.Order) int {
		return 1 + page(first, last)*child
	}
	c.UserConnection.TotalCount = func(int) int { return countCost }
	c.ItemConnection.TotalCount = func(int) int { return countCost }
	return c
}
