pub mod mock_judge;
