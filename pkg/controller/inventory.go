package controller

import "github.com/spotmax/spotmax/pkg/inventory"

// inventory returns the controller's incremental inventory, made on first use over Lister with
// the controller's clock.
func (c *Controller) inventory() *inventory.Tracker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Inventory == nil {
		c.Inventory = &inventory.Tracker{Lister: c.Lister, Now: c.Clock.Now}
	}
	return c.Inventory
}
