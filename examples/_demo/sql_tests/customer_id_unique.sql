-- name: customer_id_unique
-- reason: a customer_id appears more than once in the warehouse (merge keys broken)
SELECT customer_id, count(*) AS n FROM customers GROUP BY customer_id HAVING count(*) > 1
